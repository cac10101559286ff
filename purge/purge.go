// Package purge holds the one purge message that every part of Lakka
// shares: the edge applies it (its admin API and the PURGE method), the
// origin's outbox sends it, "lakka purge" sends it, and the bench's relay
// translates it for Varnish and nginx. Its JSON form is the body of an
// edge's POST /api/purge (docs/CONTRACTS.md); Decode and Send are the only
// code that reads or writes it.
//
// The package knows the message and how it travels; what a purge does to
// a cache (normalising URLs, validating tags against what the edge indexes)
// is the edge's business.
package purge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Message is one purge. The zero value purges nothing (Check refuses it).
type Message struct {
	// ID names the message for deduplication, unique per issuer (for
	// example an origin's name and its outbox row id); empty for one-off
	// purges such as "lakka purge".
	ID string `json:"id,omitempty"`
	// Tags purge every object tagged with one of them (Surrogate-Key).
	Tags []string `json:"tags,omitempty"`
	// URLs purge every variant of each URL: absolute http(s) URLs, or a
	// path and query, which purges it on every host.
	URLs []string `json:"urls,omitempty"`
	// All purges everything.
	All bool `json:"all,omitempty"`
	// Soft marks objects stale instead of removing them, so that grace
	// serves them while one fresh copy is fetched.
	Soft bool `json:"soft"`
	// IssuedAt is when the issuer made the purge (zero: unknown).
	IssuedAt time.Time `json:"issued_at,omitzero"`
	// Issuer names who made it (an origin, "lakka purge", an edge).
	Issuer string `json:"issuer,omitempty"`
}

// Result is an edge's answer to a purge: how many objects it affected.
type Result struct {
	Purged int  `json:"purged"`
	Soft   bool `json:"soft"`
	// Bus says what became of the purge on the purge bus, when the edge
	// has one: "published" (every edge will apply it), "duplicate" (the
	// bus had its id already) or "failed: ..." (applied on this edge
	// only).
	Bus string `json:"bus,omitempty"`
}

// Limits of one message, the same for every sender and receiver.
const (
	// MaxBodyBytes bounds a message's JSON.
	MaxBodyBytes = 1 << 20
	// MaxItems bounds its tags and URLs together.
	MaxItems = 10000
)

// APIPath is the purge endpoint on an edge's admin listener.
const APIPath = "/api/purge"

// ErrEmpty means a message names nothing to purge.
var ErrEmpty = errors.New(`nothing to purge: give "tags", "urls" or "all": true`)

// Check reports what makes m unusable: nothing to purge, too many items,
// an empty tag or URL.
func (m *Message) Check() error {
	if !m.All && len(m.Tags) == 0 && len(m.URLs) == 0 {
		return ErrEmpty
	}
	if len(m.Tags)+len(m.URLs) > MaxItems {
		return fmt.Errorf("too many tags and urls (at most %d per request)", MaxItems)
	}
	for i, t := range m.Tags {
		if t == "" {
			return fmt.Errorf("tags[%d]: empty", i)
		}
	}
	for i, u := range m.URLs {
		if u == "" {
			return fmt.Errorf("urls[%d]: empty", i)
		}
	}
	return nil
}

// Decode reads one message from r strictly: at most MaxBodyBytes, no
// unknown fields, and Check passes.
func Decode(r io.Reader) (Message, error) {
	var m Message
	dec := json.NewDecoder(io.LimitReader(r, MaxBodyBytes+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("bad JSON body: %w", err)
	}
	if err := m.Check(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// StatusError is an edge's refusal of a purge: its status code and the
// error message it gave.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("refused: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// URL returns the purge API's URL on an edge admin address: "host:port"
// or a base URL ("http://host:port").
func URL(admin string) string {
	base := admin
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	return strings.TrimRight(base, "/") + APIPath
}

// Send posts m to the purge API of the edge at admin with a bearer token.
// A 2xx answer gives the edge's Result. Otherwise the error is a
// *StatusError when the edge answered, or the transport's error when it
// could not be reached.
func Send(ctx context.Context, c *http.Client, admin, token string, m Message) (Result, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return Result{}, fmt.Errorf("purge: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, URL(admin), bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("purge: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Result{}, fmt.Errorf("purge: read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return Result{}, &StatusError{Status: resp.StatusCode, Message: e.Error}
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("purge: bad answer: %w", err)
	}
	return r, nil
}
