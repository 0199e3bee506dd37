package inventory_test

import (
	"strings"
	"testing"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/internal/localstack/seed"
)

func TestWarehouse(t *testing.T) {
	for _, tc := range []struct {
		code, want string
		ok         bool
	}{
		{"east", "east", true},
		{"WH-A", "wh-a", true},
		{"Main_2", "main_2", true},
		{"0", "0", true},
		{strings.Repeat("Z", 32), strings.Repeat("z", 32), true},
		{strings.Repeat("z", 33), "", false},
		{"", "", false},
		{"-a", "", false},
		{"_a", "", false},
		{"a b", "", false},
		{"é", "", false},
		{"\u212a", "", false}, // the Kelvin sign, which lower-cases to k
		{"a\n", "", false},
	} {
		got, ok := inventory.Warehouse(tc.code)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Warehouse(%q) = %q, %v; want %q, %v", tc.code, got, ok, tc.want, tc.ok)
		}
	}
}

// TestSeedWarehousesAreStoredForm: the demo catalogue's warehouse codes
// are already what Warehouse stores, so the stack shows them as written.
func TestSeedWarehousesAreStoredForm(t *testing.T) {
	for _, wh := range seed.Warehouses {
		if got, ok := inventory.Warehouse(wh); !ok || got != wh {
			t.Errorf("seed warehouse %q is stored as %q, %v", wh, got, ok)
		}
	}
}
