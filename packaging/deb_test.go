// Package packaging holds what the lakka Debian package is made of
// (nfpm.yaml, the systemd units, the shipped configuration, the logrotate
// file, the maintainer scripts) and the test that builds the package with
// "make deb" and checks what ops would install.
package packaging

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lakka-cache/lakka/config"
)

// need returns the path of a tool the test runs. Without it the test
// skips, except under CI=true, where .ci/run installs it and its absence
// is a failure.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (Debian package %s), and CI=true: .ci/run must provide it", tool, pkg)
	}
	t.Skipf("%s not found: install the Debian package %s to check the lakka package", tool, pkg)
	return ""
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

func TestDebVersion(t *testing.T) {
	dpkg := need(t, "dpkg", "dpkg")
	conv := func(describe string) string {
		t.Helper()
		return strings.TrimSpace(run(t, "./debversion.sh", describe))
	}
	for describe, want := range map[string]string{
		"v1.2.3":                  "1.2.3",
		"1.2.3":                   "1.2.3",
		"v1.3.0-rc1":              "1.3.0~rc1",
		"v1.2.3-4-gabc1234":       "1.2.3+git4.gabc1234",
		"v1.2.3-4-gabc1234-dirty": "1.2.3+git4.gabc1234.dirty",
		"v1.3.0-rc1-2-gdeadbee":   "1.3.0~rc1+git2.gdeadbee",
		"v1.2.3-dirty":            "1.2.3+dirty",
		"abc1234":                 "0.0.0~gitabc1234",
		"6a9ef51":                 "0.0.0~git6a9ef51",
		"6a9ef51-dirty":           "0.0.0~git6a9ef51+dirty",
		"devel":                   "0.0.0~devel",
		"release_2":               "0.0.0~release.2",
	} {
		got := conv(describe)
		if got != want {
			t.Errorf("debversion.sh %s: %q, want %q", describe, got, want)
		}
		if out, err := exec.Command(dpkg, "--validate-version", got).CombinedOutput(); err != nil {
			t.Errorf("debversion.sh %s: dpkg refuses %q: %s", describe, got, out)
		}
	}
	// Versions sort as the builds they name: an untagged build before
	// any release, a pre-release before its release, commits after a tag
	// after it.
	order := []string{"abc1234", "v1.2.3", "v1.2.3-4-gabc1234", "v1.3.0-rc1", "v1.3.0-rc1-2-gdeadbee", "v1.3.0", "v1.3.0-1-g0123456"}
	for i := 1; i < len(order); i++ {
		a, b := conv(order[i-1]), conv(order[i])
		if err := exec.Command(dpkg, "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("%s (%s) does not sort before %s (%s)", a, order[i-1], b, order[i])
		}
	}
}

// testVersion is what the test's build passes as VERSION: what git
// describe says four commits after v1.2.3 with local changes.
const testVersion = "v1.2.3-4-gabc1234-dirty"

// unit is a systemd unit file: the values of each Section.Key, in order.
type unit map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("%s: %q is no key=value", path, line)
				continue
			}
			u[section+"."+k] = append(u[section+"."+k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// get is the value systemd uses: the last one given.
func (u unit) get(key string) string {
	vs := u[key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// TestDebianPackage builds the package as "make deb" does and checks
// what it holds: the static binary, the units, the conffiles, the
// maintainer scripts, a shipped configuration the binary accepts, units
// systemd accepts, and a logrotate file logrotate accepts.
func TestDebianPackage(t *testing.T) {
	dpkgDeb := need(t, "dpkg-deb", "dpkg")
	need(t, "make", "make")
	dist := t.TempDir()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	deb := strings.TrimSpace(run(t, "make", "-s", "-C", root, "deb", "DIST="+dist, "VERSION="+testVersion))

	// The control file.
	fields := map[string]string{}
	for _, line := range strings.Split(run(t, dpkgDeb, "-f", deb), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, " ") {
			fields[k] = v
		}
	}
	wantArch := strings.TrimSpace(run(t, need(t, "dpkg", "dpkg"), "--print-architecture"))
	for k, want := range map[string]string{"Package": "lakka", "Version": "1.2.3+git4.gabc1234.dirty", "Architecture": wantArch, "Recommends": "logrotate"} {
		if fields[k] != want {
			t.Errorf("control %s: %q, want %q", k, fields[k], want)
		}
	}
	for _, k := range []string{"Maintainer", "Description"} {
		if fields[k] == "" {
			t.Errorf("control: no %s", k)
		}
	}
	for _, k := range []string{"Depends", "Pre-Depends"} {
		if fields[k] != "" {
			t.Errorf("control %s: %q, want none (the binary is static)", k, fields[k])
		}
	}
	if want := "lakka_" + fields["Version"] + "_" + fields["Architecture"] + ".deb"; filepath.Base(deb) != want || filepath.Dir(deb) != dist {
		t.Errorf("make deb wrote %s, want %s in DIST", deb, want)
	}

	// The file list: paths, modes, owners.
	listed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(run(t, dpkgDeb, "-c", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c: %q", line)
		}
		path := strings.TrimPrefix(f[5], ".")
		listed[path] = f[0]
		if f[1] != "root/root" {
			t.Errorf("%s owned by %s, want root/root", path, f[1])
		}
		if strings.HasPrefix(path, "/lib/") || strings.HasPrefix(path, "/bin/") || strings.HasPrefix(path, "/var/") {
			t.Errorf("%s: files go under /usr (merged /usr), and /var is made by postinst", path)
		}
	}
	for path, mode := range map[string]string{
		"/usr/bin/lakka": "-rwxr-xr-x",
		"/usr/lib/systemd/system/lakka-edge.service":   "-rw-r--r--",
		"/usr/lib/systemd/system/lakka-origin.service": "-rw-r--r--",
		"/etc/lakka/edge.yaml":                         "-rw-r--r--",
		"/etc/lakka/origin.yaml":                       "-rw-r--r--",
		"/etc/default/lakka-edge":                      "-rw-------",
		"/etc/default/lakka-origin":                    "-rw-------",
		"/etc/logrotate.d/lakka":                       "-rw-r--r--",
	} {
		if got, ok := listed[path]; !ok {
			t.Errorf("%s is not in the package", path)
		} else if got != mode {
			t.Errorf("%s: mode %s, want %s", path, got, mode)
		}
	}

	// The files themselves, and the control archive (DEBIAN/).
	tree := filepath.Join(t.TempDir(), "root")
	run(t, dpkgDeb, "-R", deb, tree)
	in := func(path string) string { return filepath.Join(tree, path) }

	conffiles, err := os.ReadFile(in("DEBIAN/conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	gotConf := strings.Fields(string(conffiles))
	slices.Sort(gotConf)
	wantConf := []string{"/etc/default/lakka-edge", "/etc/default/lakka-origin", "/etc/lakka/edge.yaml", "/etc/lakka/origin.yaml", "/etc/logrotate.d/lakka"}
	if !slices.Equal(gotConf, wantConf) {
		t.Errorf("conffiles %q, want %q", gotConf, wantConf)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		p := in("DEBIAN/" + s)
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("maintainer script %s: %v", s, err)
			continue
		}
		if st.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v, want 0755", s, st.Mode().Perm())
		}
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v\n%s", s, err, out)
		}
	}

	t.Run("maintainer scripts", func(t *testing.T) {
		maintainerScripts(t, in("DEBIAN"))
	})

	bin := in("usr/bin/lakka")
	t.Run("binary", func(t *testing.T) {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("/usr/bin/lakka has a %v program header: not static", p.Type)
			}
		}
		bi, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		for k, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": "linux"} {
			if settings[k] != want {
				t.Errorf("built with %s=%q, want %q", k, settings[k], want)
			}
		}
		if out := run(t, bin, "version"); out != "lakka "+testVersion+"\n" {
			t.Errorf("lakka version: %q, want the Makefile's VERSION %q", out, testVersion)
		}
	})

	edgeUnit := parseUnit(t, in("usr/lib/systemd/system/lakka-edge.service"))
	originUnit := parseUnit(t, in("usr/lib/systemd/system/lakka-origin.service"))

	t.Run("config", func(t *testing.T) {
		for _, name := range []string{"edge.yaml", "origin.yaml"} {
			out := run(t, bin, "config", "check", in("etc/lakka/"+name))
			if !strings.HasSuffix(out, ": ok\n") {
				t.Errorf("lakka config check %s: %q", name, out)
			}
		}
		edge, err := config.LoadFile(in("etc/lakka/edge.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		// What "lakka edge --config /etc/lakka/edge.yaml" checks before it
		// starts: a backend too.
		if err := edge.ValidateEdge(); err != nil {
			t.Errorf("edge.yaml does not start an edge: %v", err)
		}
		if host, _, _ := net.SplitHostPort(edge.Edge.Admin); !net.ParseIP(host).IsLoopback() {
			t.Errorf("edge.admin %s: want loopback as shipped", edge.Edge.Admin)
		}
		if pid := edgeUnit.get("Service.PIDFile"); edge.Edge.PIDFile != pid || filepath.Dir(pid) != "/run/"+edgeUnit.get("Service.RuntimeDirectory") {
			t.Errorf("edge.pid_file %q, unit PIDFile=%q in RuntimeDirectory=%q: want one file there", edge.Edge.PIDFile, pid, edgeUnit.get("Service.RuntimeDirectory"))
		}
		if m, _ := filepath.Match("/var/log/lakka/*.log", edge.Log.Access); !m {
			t.Errorf("log.access %q: want a file logrotate's /var/log/lakka/*.log rotates", edge.Log.Access)
		}
		origin, err := config.LoadFile(in("etc/lakka/origin.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(edge.Backends.Servers, func(b config.Backend) bool { return b.Address == origin.Origin.Listen }) {
			t.Errorf("origin.listen %s is none of the edge's backends %v", origin.Origin.Listen, edge.Backends.Servers)
		}
		if !slices.Contains(origin.Origin.EdgeAdmins, edge.Edge.Admin) {
			t.Errorf("origin.edge_admins %v lacks the edge's admin %s: purges would not reach it", origin.Origin.EdgeAdmins, edge.Edge.Admin)
		}
		// The cache survives restarts and upgrades, in the unit's
		// StateDirectory (the only place under /var/lib it may write).
		if edge.Cache.SnapshotPath != "/var/lib/lakka/edge.snapshot" {
			t.Errorf("edge.yaml: cache.snapshot_path %q, want /var/lib/lakka/edge.snapshot", edge.Cache.SnapshotPath)
		}
	})

	t.Run("units", func(t *testing.T) {
		f := func(name string, u unit, want map[string]string) {
			t.Helper()
			for k, v := range want {
				if got := u.get(k); got != v {
					t.Errorf("%s: %s=%q, want %q", name, k, got, v)
				}
			}
		}
		hardening := map[string]string{
			"Service.User":                    "lakka",
			"Service.Restart":                 "on-failure",
			"Service.StateDirectory":          "lakka",
			"Service.NoNewPrivileges":         "yes",
			"Service.ProtectSystem":           "strict",
			"Service.ProtectHome":             "yes",
			"Service.PrivateTmp":              "yes",
			"Service.PrivateDevices":          "yes",
			"Service.ProtectKernelTunables":   "yes",
			"Service.ProtectKernelModules":    "yes",
			"Service.ProtectControlGroups":    "yes",
			"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
			"Service.RestrictNamespaces":      "yes",
			"Service.LockPersonality":         "yes",
			"Service.MemoryDenyWriteExecute":  "yes",
			"Service.SystemCallArchitectures": "native",
			"Service.Type":                    "notify",
			"Install.WantedBy":                "multi-user.target",
		}
		f("lakka-edge.service", edgeUnit, hardening)
		f("lakka-edge.service", edgeUnit, map[string]string{
			"Service.ExecStart":             "/usr/bin/lakka edge --config /etc/lakka/edge.yaml",
			"Service.NotifyAccess":          "all",
			"Service.ExecReload":            "/bin/kill -HUP $MAINPID",
			"Service.EnvironmentFile":       "-/etc/default/lakka-edge",
			"Service.LogsDirectory":         "lakka",
			"Service.CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
			"Service.AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
		})
		f("lakka-origin.service", originUnit, hardening)
		f("lakka-origin.service", originUnit, map[string]string{
			"Service.ExecStart":       "/usr/bin/lakka origin --config /etc/lakka/origin.yaml",
			"Service.EnvironmentFile": "-/etc/default/lakka-origin",
			// SIGHUP ends the origin: a reload would stop it.
			"Service.ExecReload": "",
		})
		for _, u := range []unit{edgeUnit, originUnit} {
			if u.get("Service.LimitNOFILE") == "" {
				t.Errorf("no LimitNOFILE in %s", u.get("Service.ExecStart"))
			}
		}
	})

	t.Run("systemd-analyze", func(t *testing.T) {
		analyze := need(t, "systemd-analyze", "systemd")
		// verify refuses a unit whose ExecStart= binary does not exist,
		// and the package is not installed here: the copies it checks
		// start the extracted binary instead, and are otherwise as shipped.
		dir := t.TempDir()
		copyUnit := func(name, dst string, edit func(string) string) {
			t.Helper()
			b, err := os.ReadFile(in("usr/lib/systemd/system/" + name))
			if err != nil {
				t.Fatal(err)
			}
			s := strings.ReplaceAll(string(b), "\nExecStart=/usr/bin/lakka ", "\nExecStart="+bin+" ")
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, name), []byte(edit(s)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		same := func(s string) string { return s }
		copyUnit("lakka-edge.service", dir, same)
		copyUnit("lakka-origin.service", dir, same)
		if problems := verify(t, analyze, dir, "lakka-edge.service", "lakka-origin.service"); problems != "" {
			t.Errorf("systemd-analyze verify:\n%s", problems)
		}
		// verify exits 0 on most mistakes ("ignoring"): the check counts
		// what it says about our units. A misspelt value must fail it.
		broken := filepath.Join(dir, "broken")
		copyUnit("lakka-edge.service", broken, func(s string) string { return strings.Replace(s, "\nType=notify\n", "\nType=notfy\n", 1) })
		if problems := verify(t, analyze, broken, "lakka-edge.service"); !strings.Contains(problems, "notfy") {
			t.Errorf("systemd-analyze verify passes a unit with Type=notfy; said %q", problems)
		}
	})

	t.Run("logrotate", func(t *testing.T) {
		conf := in("etc/logrotate.d/lakka")
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, want := range []string{"/var/log/lakka/*.log {", "postrotate", "systemctl kill --signal=USR1 --kill-whom=main lakka-edge.service"} {
			if !strings.Contains(s, want) {
				t.Errorf("logrotate file lacks %q", want)
			}
		}
		if strings.Contains(s, "\tcopytruncate") {
			t.Errorf("logrotate file copies and truncates: lines written meanwhile are lost; the edge reopens on SIGUSR1")
		}
		logrotate := need(t, "logrotate", "logrotate")
		// --debug changes nothing: it parses the file and says what it
		// would do.
		cmd := exec.Command(logrotate, "--debug", "--state", filepath.Join(t.TempDir(), "state"), conf)
		out, err := cmd.CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("error:")) {
			t.Errorf("logrotate --debug: %v\n%s", err, out)
		}
	})
}

// verify runs systemd-analyze verify on units in dir and returns what it
// says about them: every line that names one of them, and its error if
// it failed. Lines about other units (the host's) are logged only.
func verify(t *testing.T, analyze, dir string, units ...string) string {
	t.Helper()
	args := []string{"verify", "--man=no"}
	for _, u := range units {
		args = append(args, filepath.Join(dir, u))
	}
	out, err := exec.Command(analyze, args...).CombinedOutput()
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		if slices.ContainsFunc(units, func(u string) bool { return strings.Contains(line, u) }) {
			problems = append(problems, line)
		} else {
			t.Logf("systemd-analyze verify, about another unit: %s", line)
		}
	}
	if err != nil {
		problems = append(problems, err.Error())
	}
	return strings.Join(problems, "\n")
}

// maintainerScripts runs the package's maintainer scripts in dir as dpkg
// would on a systemd machine, with every command they call replaced by
// one that records its arguments (so nothing on this machine changes),
// and checks what they ask for: a first install, an upgrade, a remove, a
// purge.
func maintainerScripts(t *testing.T, dir string) {
	sandbox := t.TempDir()
	shims := filepath.Join(sandbox, "bin")
	// "Is systemd running?" is [ -d /run/systemd/system ]: here it is.
	systemd := filepath.Join(sandbox, "run/systemd/system")
	for _, d := range []string{shims, systemd} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	log := filepath.Join(sandbox, "log")
	// The lakka user does not exist yet; the edge was never disabled and
	// is running; the origin was never enabled.
	shim := `#!/bin/sh
echo "${0##*/} $*" >>` + log + `
case "${0##*/} $*" in
"getent "*) exit 2 ;;
"deb-systemd-helper debian-installed "*) exit 1 ;;
esac
exit 0
`
	for _, c := range []string{"getent", "groupadd", "useradd", "install", "rm", "systemctl", "deb-systemd-helper", "deb-systemd-invoke"} {
		if err := os.WriteFile(filepath.Join(shims, c), []byte(shim), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runScript := func(script string, args ...string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, script))
		if err != nil {
			t.Fatal(err)
		}
		copied := filepath.Join(sandbox, script)
		if err := os.WriteFile(copied, []byte(strings.ReplaceAll(string(b), "/run/systemd/system", systemd)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(log, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/bin/sh", append([]string{copied}, args...)...)
		// Only the shims: a command the test does not know fails the
		// script (set -e).
		cmd.Env = []string{"PATH=" + shims}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s %v: %v\n%s", script, args, err, out)
		}
		b, err = os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	check := func(what, calls string, want, never []string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(calls, w+"\n") {
				t.Errorf("%s: no %q; it ran:\n%s", what, w, calls)
			}
		}
		for _, n := range never {
			if strings.Contains(calls, n) {
				t.Errorf("%s: ran %q:\n%s", what, n, calls)
			}
		}
	}
	starts := []string{"systemctl start", "systemctl restart lakka-edge", "deb-systemd-invoke start", "deb-systemd-invoke restart", "enable lakka-origin", "stop"}
	check("postinst configure (first install)", runScript("postinst", "configure"), []string{
		"groupadd --system lakka",
		"useradd --system --gid lakka --home-dir /var/lib/lakka --no-create-home --shell /usr/sbin/nologin --comment Lakka caching proxy lakka",
		"install -d -o lakka -g lakka -m 0750 /var/lib/lakka /var/log/lakka",
		"systemctl daemon-reload",
		"deb-systemd-helper enable lakka-edge.service",
	}, append(starts, "kill"))
	check("postinst configure (upgrade)", runScript("postinst", "configure", "0.0.1"), []string{
		"systemctl daemon-reload",
		"systemctl kill --signal=USR2 --kill-whom=main lakka-edge.service",
		"systemctl try-restart lakka-origin.service",
	}, starts)
	check("prerm upgrade", runScript("prerm", "upgrade", "0.0.2"), nil, []string{"stop", "kill"})
	check("prerm remove", runScript("prerm", "remove"), []string{"deb-systemd-invoke stop lakka-edge.service lakka-origin.service"}, nil)
	check("postrm remove", runScript("postrm", "remove"), []string{"deb-systemd-helper mask lakka-edge.service lakka-origin.service"}, []string{"rm "})
	check("postrm purge", runScript("postrm", "purge"), []string{"rm -rf /var/lib/lakka /var/log/lakka", "deb-systemd-helper purge lakka-edge.service lakka-origin.service"}, nil)
}
