package test

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// goList runs "go list args..." from this package's directory, which lies
// inside the module, and returns its output fields.
func goList(gobin string, args ...string) ([]string, error) {
	out, err := goListRaw(gobin, args...)
	return strings.Fields(out), err
}

// goListRaw runs "go list args..." and returns its output.
func goListRaw(gobin string, args ...string) (string, error) {
	cmd := exec.Command(gobin, append([]string{"list"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// layout knows the module's import paths and what each part of it is.
type layout struct{ module string }

// rel returns path relative to the module, and whether it is in the module.
func (l layout) rel(path string) (string, bool) {
	if path == l.module {
		return "", true
	}
	return strings.CutPrefix(path, l.module+"/")
}

// under reports whether path is dir of the module or inside it.
func (l layout) under(path, dir string) bool {
	r, ok := l.rel(path)
	return ok && (r == dir || strings.HasPrefix(r, dir+"/"))
}

// isStd reports whether path is a standard library package: no dot in its
// first element, and not a package of this module.
func (l layout) isStd(path string) bool {
	if _, ok := l.rel(path); ok {
		return false
	}
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// adapter returns the adapter a package of the module belongs to:
// "jetstream" for adapters/jetstream/..., and "source/kv" for
// adapters/source/kv/... (each source is its own adapter). It returns ""
// for a package outside adapters/, and for one under adapters/internal/,
// which is no adapter but support code the adapters share (see shared).
func (l layout) adapter(path string) string {
	r, ok := l.rel(path)
	if !ok || l.shared(path) {
		return ""
	}
	rest, ok := strings.CutPrefix(r, "adapters/")
	if !ok {
		return ""
	}
	parts := strings.Split(rest, "/")
	if parts[0] == "source" && len(parts) > 1 {
		return "source/" + parts[1]
	}
	return parts[0]
}

// shared reports whether path is under adapters/internal/: support code
// that every adapter may import (the work-queue runner), and which imports
// no adapter itself.
func (l layout) shared(path string) bool { return l.under(path, "adapters/internal") }

// inModule reports whether path is a package of the module.
func (l layout) inModule(path string) bool {
	_, ok := l.rel(path)
	return ok
}

func TestLayoutHelpers(t *testing.T) {
	l := layout{module: "example.com/m"}
	std := map[string]bool{
		"fmt": true, "net/http": true, "vendor/golang.org/x/net/http2/hpack": true,
		"example.com/m/domain": false, "example.com/m": false, "github.com/nats-io/nats.go": false,
		"golang.org/x/sys/unix": false,
	}
	for path, want := range std {
		if got := l.isStd(path); got != want {
			t.Errorf("isStd(%q) = %v, want %v", path, got, want)
		}
	}
	adapters := map[string]string{
		"example.com/m/adapters/jetstream":          "jetstream",
		"example.com/m/adapters/jetstream/internal": "jetstream",
		"example.com/m/adapters/source/kv":          "source/kv",
		"example.com/m/adapters/source/dir":         "source/dir",
		"example.com/m/adapters/source":             "source",
		"example.com/m/adapters/internal":           "",
		"example.com/m/adapters/internal/workqueue": "",
		"example.com/m/adapters/internalx":          "internalx",
		"example.com/m/domain":                      "",
		"example.com/madapters/x":                   "",
		"example.com/other/adapters/x":              "",
	}
	for path, want := range adapters {
		if got := l.adapter(path); got != want {
			t.Errorf("adapter(%q) = %q, want %q", path, got, want)
		}
	}
	shared := map[string]bool{
		"example.com/m/adapters/internal":           true,
		"example.com/m/adapters/internal/workqueue": true,
		"example.com/m/adapters/internal/a/b":       true,
		"example.com/m/adapters/internalx":          false,
		"example.com/m/adapters/jetstream/internal": false,
		"example.com/m/adapters/jetstream":          false,
		"example.com/m/internal":                    false,
		"example.com/other/adapters/internal/x":     false,
	}
	for path, want := range shared {
		if got := l.shared(path); got != want {
			t.Errorf("shared(%q) = %v, want %v", path, got, want)
		}
	}
	inModule := map[string]bool{
		"example.com/m": true, "example.com/m/adapters/internal/workqueue": true,
		"example.com/mx": false, "github.com/nats-io/nats.go": false, "fmt": false,
	}
	for path, want := range inModule {
		if got := l.inModule(path); got != want {
			t.Errorf("inModule(%q) = %v, want %v", path, got, want)
		}
	}
	if !l.under("example.com/m/cmd/backupd", "cmd") || l.under("example.com/m/cmdx", "cmd") || l.under("example.com/m/domain", "cmd") {
		t.Error("under(…, cmd) misclassifies")
	}
}

// graph is the import graph of one package's dependencies: each package
// of go list -deps with its direct imports.
type graph map[string][]string

// parseGraph reads lines of "path import import ...".
func parseGraph(out string) graph {
	g := graph{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) > 0 {
			g[f[0]] = f[1:]
		}
	}
	return g
}

// violations walks g from root through allowed packages and returns, for
// each package that is not allowed but imported by an allowed one, the
// import chain from root to it, e.g. "a -> b -> c". allowed is not asked
// about root.
func (g graph) violations(root string, allowed func(string) bool) []string {
	parent := map[string]string{root: ""}
	queue := []string{root}
	var out []string
	bad := map[string]bool{}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, v := range g[u] {
			if _, ok := parent[v]; ok || bad[v] {
				continue
			}
			if !allowed(v) {
				bad[v] = true
				chain := []string{v}
				for w := u; w != ""; w = parent[w] {
					chain = append(chain, w)
				}
				slices.Reverse(chain)
				out = append(out, strings.Join(chain, " -> "))
				continue
			}
			parent[v] = u
			queue = append(queue, v)
		}
	}
	slices.Sort(out)
	return out
}

func TestGraphViolations(t *testing.T) {
	g := parseGraph("a b x\nb c\nc y\nx\ny\n")
	got := g.violations("a", func(p string) bool { return p != "x" && p != "y" })
	want := []string{"a -> b -> c -> y", "a -> x"}
	if !slices.Equal(got, want) {
		t.Errorf("violations = %q, want %q", got, want)
	}
	if got := g.violations("a", func(string) bool { return true }); len(got) != 0 {
		t.Errorf("violations with everything allowed = %q, want none", got)
	}
}

// TestDependenciesPointOneWay checks STYLE rule 1 with go list -deps:
// domain imports only the standard library; projections imports the
// standard library and domain; service (the services that do I/O) imports
// the standard library and domain; usecase imports domain and
// projections and no adapter;
// no adapter imports another, except that every adapter may import the
// support code under adapters/internal/ (the work-queue runner, set-up,
// NATS error classes), which imports only the standard library,
// third-party packages, domain and adapters/internal/; only cmd/ and test/ import cmd/. A failure names the
// offending import and the chain of imports that leads to it.
func TestDependenciesPointOneWay(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found: %v", err)
	}
	mods, err := goList(gobin, "-m", "-f", "{{.Path}}")
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != 1 {
		t.Fatalf("go list -m = %v, want one module", mods)
	}
	l := layout{module: mods[0]}
	pkgs, err := goList(gobin, "-f", "{{.ImportPath}}", l.module+"/...")
	if err != nil {
		t.Fatal(err)
	}

	graphs := make([]graph, len(pkgs))
	errs := make([]error, len(pkgs))
	var wg sync.WaitGroup
	for i, p := range pkgs {
		wg.Go(func() {
			out, err := goListRaw(gobin, "-deps", "-test=false", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", p)
			graphs[i], errs[i] = parseGraph(out), err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	for _, p := range pkgs {
		switch r, _ := l.rel(p); {
		case l.under(p, "domain"):
			seen["domain"] = true
		case r == "projections":
			seen["projections"] = true
		case l.under(p, "usecase"):
			seen["usecase"] = true
		case l.under(p, "service"):
			seen["service"] = true
		case l.adapter(p) != "":
			seen["adapters"] = true
		case l.shared(p):
			seen["adapters/internal"] = true
		}
	}
	for _, part := range []string{"domain", "projections", "usecase", "service", "adapters", "adapters/internal"} {
		if !seen[part] {
			t.Errorf("no package of %s/ in %v: the check would pass vacuously", part, pkgs)
		}
	}

	type rule struct {
		applies func(p string) bool
		allowed func(p, dep string) bool
		what    string
	}
	rules := []rule{{
		applies: func(p string) bool { return l.under(p, "domain") },
		allowed: func(_, d string) bool { return l.isStd(d) || l.under(d, "domain") },
		what:    "domain may import only the standard library",
	}, {
		applies: func(p string) bool { return l.under(p, "domain") },
		allowed: func(_, d string) bool { return !l.under(d, "projections") && l.adapter(d) == "" && !l.shared(d) },
		what:    "domain must not import projections or adapters",
	}, {
		applies: func(p string) bool { r, _ := l.rel(p); return r == "projections" },
		allowed: func(_, d string) bool { return l.isStd(d) || l.under(d, "domain") },
		what:    "projections may import only the standard library and domain",
	}, {
		applies: func(p string) bool { return l.under(p, "usecase") },
		allowed: func(_, d string) bool {
			return l.isStd(d) || l.under(d, "domain") || l.under(d, "projections") || l.under(d, "usecase")
		},
		what: "usecase may import only the standard library, domain and projections",
	}, {
		applies: func(p string) bool { return l.under(p, "service") },
		allowed: func(_, d string) bool { return l.isStd(d) || l.under(d, "domain") || l.under(d, "service") },
		what:    "service may import only the standard library and domain",
	}, {
		applies: func(p string) bool { return l.adapter(p) != "" },
		// adapter is "" for adapters/internal/, which every adapter may
		// import.
		allowed: func(p, d string) bool { return l.adapter(d) == "" || l.adapter(d) == l.adapter(p) },
		what:    "an adapter must not import another adapter (only adapters/internal/)",
	}, {
		applies: func(p string) bool { return l.shared(p) },
		allowed: func(_, d string) bool { return l.isStd(d) || !l.inModule(d) || l.shared(d) || l.under(d, "domain") },
		what:    "adapters/internal/ may import only the standard library, third-party packages, domain and adapters/internal/",
	}, {
		applies: func(p string) bool { return !l.under(p, "cmd") && !l.under(p, "test") },
		allowed: func(_, d string) bool { return !l.under(d, "cmd") },
		what:    "only cmd/ and test/ may import cmd/",
	}}

	for i, p := range pkgs {
		if _, ok := graphs[i][p]; !ok {
			t.Errorf("go list -deps %s does not list the package itself", p)
		}
		for _, r := range rules {
			if !r.applies(p) {
				continue
			}
			for _, chain := range graphs[i].violations(p, func(d string) bool { return r.allowed(p, d) }) {
				bad := chain[strings.LastIndex(chain, " ")+1:]
				t.Errorf("%s imports %s: %s (%s)", p, bad, r.what, strings.ReplaceAll(chain, l.module+"/", ""))
			}
		}
	}
}

// impureImports are the packages the pure core must not import: it takes
// no context, logs nothing and holds no locks.
var impureImports = []string{"context", "log/slog", "sync", "sync/atomic"}

// clockCalls are the functions of package time that read the clock or
// wait: the pure core takes the time as an argument instead.
var clockCalls = []string{"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "Tick", "NewTimer", "NewTicker"}

// clockReads returns, as "file:line: time.F", every call or reference of a
// clockCalls function in the Go source src (the import of "time" under
// any name counts).
func clockReads(fset *gotoken.FileSet, name string, src []byte) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	local := ""
	for _, imp := range f.Imports {
		if strings.Trim(imp.Path.Value, `"`) != "time" {
			continue
		}
		local = "time"
		if imp.Name != nil {
			local = imp.Name.Name
		}
	}
	if local == "" || local == "_" {
		return nil, nil
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == local && slices.Contains(clockCalls, sel.Sel.Name) {
			out = append(out, fmt.Sprintf("%s: time.%s", fset.Position(sel.Pos()), sel.Sel.Name))
		}
		return true
	})
	return out, nil
}

func TestClockReads(t *testing.T) {
	fset := gotoken.NewFileSet()
	src := []byte("package p\nimport tm \"time\"\nfunc f() { _ = tm.Now(); g := tm.Since; _ = g; _ = tm.Duration(1); _ = tm.Unix(0, 0) }\n")
	got, err := clockReads(fset, "p.go", src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"p.go:3:16: time.Now", "p.go:3:31: time.Since"}
	if !slices.Equal(got, want) {
		t.Errorf("clockReads = %q, want %q", got, want)
	}
	none, err := clockReads(fset, "q.go", []byte("package p\nfunc f(time struct{ Now func() }) { time.Now() }\n"))
	if err != nil || len(none) != 0 {
		t.Errorf("clockReads without the time package = %q, %v; want none", none, err)
	}
}

// TestDomainIsPure checks the rule "domain imports no context, log/slog,
// sync or sync/atomic, and never reads the clock" on the packages of
// domain/ (not their tests): each import is read with go list, each call
// with go/parser.
func TestDomainIsPure(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found: %v", err)
	}
	mods, err := goList(gobin, "-m", "-f", "{{.Path}}")
	if err != nil || len(mods) != 1 {
		t.Fatalf("go list -m = %v, %v; want one module", mods, err)
	}
	out, err := goListRaw(gobin, "-f", "{{.Dir}}{{range .Imports}} {{.}}{{end}}", mods[0]+"/domain/...")
	if err != nil {
		t.Fatal(err)
	}
	fset := gotoken.NewFileSet()
	files := 0
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dir := f[0]
		for _, imp := range f[1:] {
			if slices.Contains(impureImports, imp) {
				t.Errorf("%s imports %s: domain is the pure core (no context, log/slog, sync); move the code that needs it to service/", dir, imp)
			}
		}
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			files++
			reads, err := clockReads(fset, name, src)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range reads {
				t.Errorf("%s: domain reads the clock; take the time as an argument (the services read a domain.Clock)", r)
			}
		}
	}
	if files < 10 {
		t.Fatalf("scanned %d files of domain/: the check would pass vacuously", files)
	}
}
