package origin

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The admin JSON API (docs/CONTRACTS.md): bearer token, JSON in and out,
// never cached.

// maxAPIBodyBytes bounds a request body (an article body is at most
// 200 KiB; JSON escaping can double it).
const maxAPIBodyBytes = 1 << 20

// apiError is an answer other than 400 for invalid input.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

var errAPINotFound = &apiError{http.StatusNotFound, "not found"}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// api wraps an API handler: authentication, no caching, errors as JSON.
func (s *Server) api(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return s.counted(func(w http.ResponseWriter, r *http.Request) kind {
		w.Header().Set("Cache-Control", "private, no-store")
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lakka origin"`)
			s.writeJSON(w, r, http.StatusUnauthorized, errorBody{Error: "unauthorized: send Authorization: Bearer <LAKKA_ORIGIN_TOKEN>"})
			return kindAPI
		}
		if err := h(w, r); err != nil {
			s.apiFail(w, r, err)
		}
		return kindAPI
	})
}

// authorized compares the bearer token in constant time. Without a
// configured token nobody is.
func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}

func (s *Server) apiFail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ie *InvalidError
		ae *apiError
		me *http.MaxBytesError
	)
	switch {
	case errors.As(err, &ie):
		s.writeJSON(w, r, http.StatusBadRequest, errorBody{Error: ie.Msg, Field: ie.Field})
	case errors.Is(err, ErrNotFound):
		s.writeJSON(w, r, http.StatusNotFound, errorBody{Error: "not found"})
	case errors.As(err, &ae):
		s.writeJSON(w, r, ae.status, errorBody{Error: ae.msg})
	case errors.As(err, &me):
		s.writeJSON(w, r, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("body larger than %d bytes", me.Limit)})
	default:
		s.logger.Error("admin API", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
		s.writeJSON(w, r, http.StatusInternalServerError, errorBody{Error: "internal error"})
	}
}

func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	// Not json.Marshal: it escapes <, > and & for HTML, which only makes
	// the API's answers harder to read.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		s.fail(w, r, "encode JSON", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	s.write(w, r, buf.Bytes())
}

// sectionJSON and articleJSON are the API's shapes (docs/CONTRACTS.md).
type sectionJSON struct {
	ID     int64  `json:"id"`
	Parent *int64 `json:"parent"`
	Slug   string `json:"slug"`
	Path   string `json:"path"`
	Name   string `json:"name"`
}

type articleJSON struct {
	ID          int64  `json:"id"`
	Section     int64  `json:"section"`
	Slug        string `json:"slug"`
	Title       string `json:"title"`
	Lead        string `json:"lead"`
	Body        string `json:"body"`
	URL         string `json:"url"`
	Version     int64  `json:"version"`
	PublishedAt string `json:"published_at"`
	UpdatedAt   string `json:"updated_at"`
}

func toJSON(a Article) articleJSON {
	return articleJSON{ID: a.ID, Section: a.SectionID, Slug: a.Slug, Title: a.Title, Lead: a.Lead, Body: a.Body, URL: a.URL,
		Version: a.Version, PublishedAt: a.PublishedAt.UTC().Format(time.RFC3339), UpdatedAt: a.UpdatedAt.UTC().Format(time.RFC3339)}
}

// articleRequest is the body of POST and PUT; absent (or null) fields are
// nil.
type articleRequest struct {
	Section *int64  `json:"section"`
	Title   *string `json:"title"`
	Lead    *string `json:"lead"`
	Body    *string `json:"body"`
}

// decodeArticleRequest reads exactly one JSON object with known fields.
// Errors are *InvalidError naming the field where there is one, or the
// *http.MaxBytesError of a body over the limit.
func decodeArticleRequest(r io.Reader) (articleRequest, error) {
	var req articleRequest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return articleRequest{}, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var me *http.MaxBytesError
		if errors.As(err, &me) {
			return articleRequest{}, err
		}
		return articleRequest{}, invalidf("", "invalid JSON: one object expected, more follows")
	}
	return req, nil
}

// jsonError turns encoding/json's errors into answers naming the field.
func jsonError(err error) error {
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
		me *http.MaxBytesError
	)
	switch {
	case errors.As(err, &me):
		return err
	case errors.Is(err, io.EOF):
		return invalidf("", "empty body: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidf("", "invalid JSON: unexpected end")
	case errors.As(err, &se):
		return invalidf("", "invalid JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		if te.Field == "" {
			return invalidf("", "the body must be a JSON object")
		}
		want := "a string"
		if te.Field == "section" {
			want = "a section id (an integer)"
		}
		return invalidf(te.Field, "must be %s, got %s", want, te.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, uerr := strconv.Unquote(name)
		if uerr != nil {
			field = name
		}
		return invalidf(field, "unknown field; the fields are section, title, lead and body")
	}
	return invalidf("", "invalid JSON: %s", err)
}

func (req *articleRequest) input() (ArticleInput, error) {
	for _, f := range []struct {
		name    string
		present bool
	}{{"section", req.Section != nil}, {"title", req.Title != nil}, {"body", req.Body != nil}} {
		if !f.present {
			return ArticleInput{}, invalidf(f.name, "is required")
		}
	}
	in := ArticleInput{Section: *req.Section, Title: *req.Title, Body: *req.Body}
	if req.Lead != nil {
		in.Lead = *req.Lead
	}
	return in, nil
}

func (req *articleRequest) patch() (ArticlePatch, error) {
	if req.Section == nil && req.Title == nil && req.Lead == nil && req.Body == nil {
		return ArticlePatch{}, invalidf("", "nothing to change: send at least one of section, title, lead, body")
	}
	return ArticlePatch{Section: req.Section, Title: req.Title, Lead: req.Lead, Body: req.Body}, nil
}

// pathID reads {id}; an ID that is not a positive integer is unknown.
func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, ErrNotFound
	}
	return id, nil
}

func (s *Server) apiSections(w http.ResponseWriter, r *http.Request) error {
	var sections []Section
	if err := s.query(queryAPIRead, func() (err error) {
		sections, err = s.store.Sections(r.Context())
		return err
	}); err != nil {
		return err
	}
	out := make([]sectionJSON, 0, len(sections))
	for _, sec := range sections {
		j := sectionJSON{ID: sec.ID, Slug: sec.Slug, Path: sec.Path, Name: sec.Name}
		if sec.Parent != 0 {
			j.Parent = &sec.Parent
		}
		out = append(out, j)
	}
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

func (s *Server) apiGetArticle(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var a Article
	if err := s.query(queryAPIRead, func() (err error) {
		a, err = s.store.Article(r.Context(), id)
		return err
	}); err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, toJSON(a))
	return nil
}

func (s *Server) apiCreateArticle(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeArticleRequest(http.MaxBytesReader(w, r.Body, maxAPIBodyBytes))
	if err != nil {
		return err
	}
	in, err := req.input()
	if err != nil {
		return err
	}
	var a Article
	if err := s.query(queryAPIWrite, func() (err error) {
		a, err = s.store.CreateArticle(r.Context(), in)
		return err
	}); err != nil {
		return err
	}
	s.delivery.Notify()
	w.Header().Set("Location", "/api/articles/"+strconv.FormatInt(a.ID, 10))
	s.writeJSON(w, r, http.StatusCreated, toJSON(a))
	return nil
}

func (s *Server) apiUpdateArticle(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	req, err := decodeArticleRequest(http.MaxBytesReader(w, r.Body, maxAPIBodyBytes))
	if err != nil {
		return err
	}
	p, err := req.patch()
	if err != nil {
		return err
	}
	var a Article
	if err := s.query(queryAPIWrite, func() (err error) {
		a, err = s.store.UpdateArticle(r.Context(), id, p)
		return err
	}); err != nil {
		return err
	}
	s.delivery.Notify()
	s.writeJSON(w, r, http.StatusOK, toJSON(a))
	return nil
}

func (s *Server) apiDeleteArticle(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.query(queryAPIWrite, func() error { return s.store.DeleteArticle(r.Context(), id) }); err != nil {
		return err
	}
	s.delivery.Notify()
	w.WriteHeader(http.StatusNoContent)
	return nil
}
