// Package bench is Lakka's load-test harness: workload models of a
// breaking-news day, parsers of real access-log traces, an open-loop load
// runner and its report.
//
// It measures from outside, over HTTP only, so that the same run can be
// pointed at a Lakka edge, at Varnish, at nginx or at a staging edge. It
// uses the bundled origin's admin API (docs/CONTRACTS.md) to publish and
// edit the article of a spike, and the origin's /metrics to count origin
// requests.
//
// The runner is open-loop: every request has a scheduled arrival time and is
// sent then, whatever happened to earlier requests, from a bounded pool of
// connections; latency is measured from the scheduled time, so a slow target
// shows up as latency rather than as a lower request rate (no coordinated
// omission). When the pool or the bench itself cannot keep up with the
// schedule, the report says so.
//
// Limits: one process, HTTP/1.1 only (keep-alive, no pipelining), response
// bodies are read whole and counted as received (compressed bytes are not
// decompressed). A target outside loopback must be allowed explicitly.
package bench
