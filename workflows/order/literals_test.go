package order_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// homonyms are values of other things that happen to be spelled like an
// order's status or a role, by the directory (relative to the module) that
// owns them. Nothing else may spell a status or a role: it uses the
// contract's constants.
var homonyms = map[string][]string{
	// payments.payments.status: the payment's own PENDING and AUTHORIZED.
	"activities/payment": {string(order.Pending), string(order.Authorized)},
	// catalog.reservations.status: the reservation's own RESERVED and REJECTED.
	"activities/inventory": {string(order.Reserved), string(order.Rejected)},
	// `ordersaga admin create` is a command name.
	"cmd/ordersaga": {string(order.RoleAdmin)},
}

// TestNoValueSpelledTwice: outside the contract, no Go code spells an
// order's status or a role as a string literal, nor an SQL statement
// quotes a status ('PENDING'): they use order.Pending, order.RoleAdmin,
// order.TerminalStatuses() and so on, passed to SQL as parameters. Test
// files and the test harnesses (internal/testkit) may spell them, as a
// client sees them over HTTP.
func TestNoValueSpelledTwice(t *testing.T) {
	root := moduleRoot(t)
	var values []string
	for _, s := range order.Statuses() {
		values = append(values, string(s))
	}
	values = append(values, string(order.RoleCustomer), string(order.RoleAdmin))

	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch {
			case rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules"),
				rel == "workflows/order", rel == "internal/testkit", strings.HasPrefix(rel, "internal/testkit/"):
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		allowed := homonyms[filepath.ToSlash(filepath.Dir(rel))]
		tags := map[*ast.BasicLit]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ImportSpec:
				return false // import paths are not values
			case *ast.Field:
				tags[n.Tag] = true // nor are struct tags
			case *ast.BasicLit:
				if n.Kind != token.STRING || tags[n] {
					return true
				}
				s, err := strconv.Unquote(n.Value)
				if err != nil {
					return true
				}
				for _, v := range values {
					if !slices.Contains(allowed, v) && (s == v || strings.Contains(s, "'"+v+"'")) {
						t.Errorf("%s:%d: %s spells %q; use the contract's constant (package order)", rel, fset.Position(n.Pos()).Line, truncate(n.Value), v)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// moduleRoot is the directory of go.mod, above this package's.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
