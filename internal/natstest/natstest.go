// Package natstest starts real nats-server processes with JetStream for
// tests: on free loopback ports, with a store in the test's temporary
// directory, killed at the end. A test can kill and restart a server (the
// same store), stop and continue it, or start a cluster of three.
//
// Without a nats-server binary the test is skipped, except under CI
// (CI=true), where it fails: CI installs the Debian package.
package natstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one nats-server process.
type Server struct {
	t    testing.TB
	bin  string
	args []string
	dir  string
	port int
	cmd  *exec.Cmd
	log  *os.File
}

// Binary returns the nats-server to run, or ends the test.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nats-server", "/usr/bin/nats-server"} {
			if _, err2 := os.Stat(p); err2 == nil {
				return p
			}
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("nats-server not found (CI installs the Debian package nats-server): %v", err)
		}
		t.Skipf("nats-server not found (apt-get install nats-server): %v", err)
	}
	return bin
}

// FreePort returns a loopback port nobody listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts one server with JetStream and waits until it accepts
// connections; extra are more nats-server flags (--auth, --tls...).
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir(), port: FreePort(t)}
	s.args = []string{"-js", "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-sd", filepath.Join(s.dir, "store"), "--server_name", "lakka-test-" + strconv.Itoa(s.port)}
	s.args = append(s.args, extra...)
	s.start()
	t.Cleanup(s.Kill)
	return s
}

// URL is the server's client URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

func (s *Server) start() {
	s.t.Helper()
	s.startNoWait()
	s.waitReady()
}

// waitReady waits until the client port accepts a connection and the
// server says JetStream is up.
func (s *Server) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			b, _ := os.ReadFile(filepath.Join(s.dir, "nats.log"))
			if strings.Contains(string(b), "Server is ready") {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(s.dir, "nats.log"))
			s.t.Fatalf("nats-server on port %d not ready after 15s:\n%s", s.port, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill kills the server (SIGKILL) and waits for it; its store stays.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
	s.log.Close()
}

// Restart starts the server again on the same port and store.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	// The log is appended to: wait for a second "Server is ready".
	b, _ := os.ReadFile(filepath.Join(s.dir, "nats.log"))
	_ = os.WriteFile(filepath.Join(s.dir, "nats.log.old"), b, 0o644)
	_ = os.Truncate(filepath.Join(s.dir, "nats.log"), 0)
	s.start()
}

// Signal sends sig to the server (SIGSTOP, SIGCONT).
func (s *Server) Signal(sig syscall.Signal) {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Cluster is three servers with JetStream clustered (R3 streams possible).
type Cluster struct {
	Servers []*Server
}

// StartCluster starts a cluster of three and waits until JetStream has a
// meta leader (the servers log it).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := Binary(t)
	name := "lakka-test-" + strconv.Itoa(FreePort(t))
	var cports []int
	c := &Cluster{}
	for range 3 {
		c.Servers = append(c.Servers, &Server{t: t, bin: bin, dir: t.TempDir(), port: FreePort(t)})
		cports = append(cports, FreePort(t))
	}
	var routes []string
	for _, p := range cports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	for i, s := range c.Servers {
		s.args = []string{"-js", "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-sd", filepath.Join(s.dir, "store"),
			"--server_name", fmt.Sprintf("%s-%d", name, i), "--cluster_name", name,
			"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", cports[i]), "--routes", strings.Join(routes, ",")}
		s.startNoWait()
		t.Cleanup(s.Kill)
	}
	for _, s := range c.Servers {
		s.waitReady()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, s := range c.Servers {
			b, _ := os.ReadFile(filepath.Join(s.dir, "nats.log"))
			if strings.Contains(string(b), "JetStream cluster new metadata leader") || strings.Contains(string(b), "Self is new JetStream cluster metadata leader") {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("nats cluster: no JetStream meta leader after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL lists every server's client URL, comma-separated.
func (c *Cluster) URL() string {
	var us []string
	for _, s := range c.Servers {
		us = append(us, s.URL())
	}
	return strings.Join(us, ",")
}

func (s *Server) startNoWait() {
	s.t.Helper()
	log, err := os.OpenFile(filepath.Join(s.dir, "nats.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	s.log = log
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
}
