package origin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"

	"github.com/lakka-cache/lakka/origin/surrogate"
)

// The comment form and CSRF without breaking caching.
//
// Article pages are cached and the same for every reader, so they cannot
// carry a per-reader CSRF token. The form on them has an empty token field;
// when a reader starts writing, site.js fetches GET /comments/token, an
// uncacheable answer ("private, no-store") that sets the token as a cookie
// scoped to Path=/comments and returns the same token in its body. The form
// posts both; POST /comments accepts the comment only if they match (the
// double-submit pattern): another site can make a browser send the cookie,
// but cannot read the token to put it in the form. Because the cookie's path
// is /comments, no page request ever carries it, and the edge can keep
// caching pages for readers who commented.

const (
	csrfCookie     = "lakka_csrf"
	csrfTokenBytes = 32
	csrfMaxAge     = 2 * 60 * 60 // seconds
	maxFormBytes   = 16 << 10
)

// csrfToken makes a new random token.
func csrfToken() string {
	b := make([]byte, csrfTokenBytes)
	rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b)
}

// validToken reports whether t looks like a token csrfToken made.
func validToken(t string) bool {
	b, err := base64.RawURLEncoding.DecodeString(t)
	return err == nil && len(b) == csrfTokenBytes
}

// serveCommentToken answers the comment form's token, and sets it as the
// cookie the POST must carry. A reader who has a valid cookie keeps it.
func (s *Server) serveCommentToken(w http.ResponseWriter, r *http.Request) {
	surrogate.SetPrivate(w.Header())
	tok := ""
	if c, err := r.Cookie(csrfCookie); err == nil && validToken(c.Value) {
		tok = c.Value
	} else {
		tok = csrfToken()
	}
	http.SetCookie(w, &http.Cookie{
		Name:     csrfCookie,
		Value:    tok,
		Path:     "/comments",
		MaxAge:   csrfMaxAge,
		HttpOnly: true,
		Secure:   r.Header.Get("X-Forwarded-Proto") == "https",
		SameSite: http.SameSiteStrictMode,
	})
	s.writeJSON(w, r, http.StatusOK, struct {
		Token string `json:"token"`
	}{tok})
}

// serveComment stores a comment posted by the form, if its token matches
// the cookie, and sends the reader back to the article (303).
func (s *Server) serveComment(w http.ResponseWriter, r *http.Request) kind {
	surrogate.SetPrivate(w.Header())
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return kindComment
	}
	c, err := r.Cookie(csrfCookie)
	form := r.PostForm.Get("csrf_token")
	if err != nil || !validToken(c.Value) || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
		http.Error(w, "missing or wrong form token: reload the page and try again", http.StatusForbidden)
		return kindComment
	}
	id, err := strconv.ParseInt(r.PostForm.Get("article"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, "bad article id", http.StatusBadRequest)
		return kindComment
	}
	var a Article
	err = s.query(queryComment, func() error {
		if _, err := s.store.AddComment(r.Context(), id, r.PostForm.Get("author"), r.PostForm.Get("body")); err != nil {
			return err
		}
		s.delivery.Notify()
		a, err = s.store.Article(r.Context(), id)
		return err
	})
	var ie *InvalidError
	switch {
	case errors.As(err, &ie):
		http.Error(w, ie.Field+": "+ie.Msg, http.StatusBadRequest)
	case errors.Is(err, ErrNotFound):
		http.Error(w, "no such article", http.StatusNotFound)
	case err != nil:
		return s.fail(w, r, "comment", err)
	default:
		http.Redirect(w, r, a.URL+"#comments", http.StatusSeeOther)
	}
	return kindComment
}
