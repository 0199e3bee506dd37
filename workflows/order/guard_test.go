package order_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The module, and its workflow code: the packages whose imports the guard
// checks.
const (
	module    = "github.com/ordersaga/ordersaga"
	workflows = module + "/workflows"
)

// deniedStd are the standard packages (and those below them) that do I/O:
// the network, files and processes, the database, and loggers that write to
// stderr. Workflow code logs through workflow.GetLogger.
var deniedStd = []string{"net", "crypto/tls", "os", "syscall", "plugin", "io/ioutil", "database/sql", "log"}

// allowedThirdParty are the only non-standard packages (and those below
// them) that workflow code may import, besides its own: the Temporal SDK
// and API, in which it runs. Any other dependency (pgx, franz-go, zap, …)
// has to be judged, and added here, before workflow code may use it.
// github.com/google/uuid is the type of the ids in the contract's
// OrderEvent: a value type that does no I/O as used (uuid.New, which reads
// random bytes, is for the gateway, never for workflow code).
var allowedThirdParty = []string{"go.temporal.io/", "github.com/google/uuid"}

// deniedTemporal are the SDK packages that talk to the Temporal server or
// run activities: not for workflow code.
var deniedTemporal = []string{"go.temporal.io/sdk/client", "go.temporal.io/sdk/worker", "go.temporal.io/sdk/contrib", "go.temporal.io/sdk/activity"}

// allowedExceptions are direct imports allowed to one package despite the
// rules: the contract's Start is handed a dialed client by its caller
// (the gateway, the starter) and is not workflow code.
var allowedExceptions = map[string][]string{
	workflows + "/order": {"go.temporal.io/sdk/client"},
}

// TestWorkflowsImportNoIO guards the determinism of workflow code at the
// import level: the packages under workflows/ (test files excluded), listed
// with their transitive imports by `go list -deps`, must satisfy two rules.
//
//  1. No package of this module outside workflows/ is among their
//     transitive imports. Our other packages are where the database, Kafka,
//     HTTP and configuration are; this is what keeps the saga from reaching
//     internal/postgres or an activity's code, even through a helper.
//  2. Each package under workflows/ imports directly only standard packages
//     outside deniedStd (net/http, os, database/sql, …), the Temporal SDK
//     and API outside deniedTemporal, and its own siblings: a third-party
//     package must be in allowedThirdParty.
//
// The standard library's and the SDK's own imports are not checked: fmt
// imports os, and the SDK, in which the workflow runs, dials the server.
// What workflow code calls (time.Now, goroutines, map iteration) is
// workflowcheck's job, in make lint.
//
// A failure names the offending import and the chain that leads to it.
func TestWorkflowsImportNoIO(t *testing.T) {
	pkgs := goListDeps(t, workflows+"/...")
	if !slices.ContainsFunc(pkgs, func(p pkg) bool { return p.ImportPath == workflows+"/order/saga" }) {
		t.Fatalf("go list found no %s/order/saga: %d packages", workflows, len(pkgs))
	}
	for _, p := range importProblems(pkgs) {
		t.Error(p)
	}
}

// TestTheImportGuardNoticesIO: the guard fails when the saga imports
// internal/postgres (directly or through another of our packages),
// net/http, pgx or the Temporal client.
func TestTheImportGuardNoticesIO(t *testing.T) {
	listed := goListDeps(t, workflows+"/...")
	saga := workflows + "/order/saga"
	postgres := pkg{ImportPath: module + "/internal/postgres", Module: &mod{Path: module}, Imports: []string{"github.com/jackc/pgx/v5/pgxpool"}}
	helper := pkg{ImportPath: module + "/internal/helper", Module: &mod{Path: module}, Imports: []string{postgres.ImportPath}}
	pgx := pkg{ImportPath: "github.com/jackc/pgx/v5/pgxpool", Module: &mod{Path: "github.com/jackc/pgx/v5"}}
	for _, c := range []struct {
		name string
		add  []pkg
		imps []string
		want string
	}{
		{"internal/postgres", []pkg{postgres, pgx}, []string{postgres.ImportPath},
			"imports " + module + "/internal/postgres, outside workflows/: " + saga + " → " + module + "/internal/postgres"},
		{"internal/postgres through a helper", []pkg{helper, postgres, pgx}, []string{helper.ImportPath},
			"imports " + module + "/internal/postgres, outside workflows/: " + saga + " → " + helper.ImportPath + " → " + postgres.ImportPath},
		{"net/http", []pkg{{ImportPath: "net/http", Standard: true}}, []string{"net/http"},
			saga + " imports net/http, which does I/O"},
		{"pgx", []pkg{pgx}, []string{pgx.ImportPath},
			saga + " imports github.com/jackc/pgx/v5/pgxpool, which is not in allowedThirdParty"},
		{"the Temporal client", nil, []string{"go.temporal.io/sdk/client"},
			saga + " imports go.temporal.io/sdk/client, which talks to the server"},
	} {
		pkgs := slices.Clone(listed)
		for i := range pkgs {
			if pkgs[i].ImportPath == saga {
				pkgs[i].Imports = append(slices.Clone(pkgs[i].Imports), c.imps...)
			}
		}
		pkgs = append(pkgs, c.add...)
		problems := importProblems(pkgs)
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, c.want) }) {
			t.Errorf("%s: want a problem containing %q, got %q", c.name, c.want, problems)
		}
	}
}

// pkg is the part of `go list -json` that the guard reads.
type pkg struct {
	ImportPath string
	Standard   bool
	Module     *mod
	Imports    []string
}

type mod struct{ Path string }

// goListDeps lists the packages matching pattern and their transitive
// imports, test files excluded.
func goListDeps(t *testing.T, pattern string) []pkg {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard,Module,Imports", pattern)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pattern, err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(&stdout)
	for {
		var p pkg
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return pkgs
		}
		if err != nil {
			t.Fatalf("read go list's output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
}

// importProblems applies the two rules of TestWorkflowsImportNoIO to pkgs,
// the output of go list -deps over the workflow packages.
func importProblems(pkgs []pkg) []string {
	byPath := map[string]pkg{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	ours := func(p pkg) bool { return p.Module != nil && p.Module.Path == module }
	var problems []string
	for _, p := range pkgs {
		if !ours(p) || under(p.ImportPath, workflows) {
			continue
		}
		// Rule 1: one of ours, outside workflows/.
		problems = append(problems, fmt.Sprintf("workflow code imports %s, outside workflows/: %s",
			p.ImportPath, strings.Join(importChain(byPath, p.ImportPath), " → ")))
	}
	for _, p := range pkgs {
		if !ours(p) || !under(p.ImportPath, workflows) {
			continue
		}
		// Rule 2: the direct imports of workflow code.
		for _, imp := range p.Imports {
			if slices.Contains(allowedExceptions[p.ImportPath], imp) {
				continue
			}
			dep, known := byPath[imp]
			switch {
			case !known:
				problems = append(problems, fmt.Sprintf("%s imports %s, which go list did not list", p.ImportPath, imp))
			case dep.Standard:
				if underAny(imp, deniedStd) {
					problems = append(problems, fmt.Sprintf("%s imports %s, which does I/O", p.ImportPath, imp))
				}
			case ours(dep):
				// Outside workflows/ is rule 1's.
			case underAny(imp, deniedTemporal):
				problems = append(problems, fmt.Sprintf("%s imports %s, which talks to the server or runs activities", p.ImportPath, imp))
			case !slices.ContainsFunc(allowedThirdParty, func(prefix string) bool { return strings.HasPrefix(imp, prefix) }):
				problems = append(problems, fmt.Sprintf("%s imports %s, which is not in allowedThirdParty", p.ImportPath, imp))
			}
		}
	}
	return problems
}

// importChain returns a shortest chain of imports from a package under
// workflows/ to target.
func importChain(byPath map[string]pkg, target string) []string {
	parent := map[string]string{}
	var queue []string
	for path := range byPath {
		if under(path, workflows) {
			parent[path] = ""
			queue = append(queue, path)
		}
	}
	slices.Sort(queue) // a stable answer
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		if path == target {
			var chain []string
			for p := path; p != ""; p = parent[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		for _, imp := range byPath[path].Imports {
			if _, seen := parent[imp]; !seen {
				parent[imp] = path
				queue = append(queue, imp)
			}
		}
	}
	return []string{target}
}

// under reports whether path is root or below it.
func under(path, root string) bool { return path == root || strings.HasPrefix(path, root+"/") }

func underAny(path string, roots []string) bool {
	return slices.ContainsFunc(roots, func(root string) bool { return under(path, root) })
}
