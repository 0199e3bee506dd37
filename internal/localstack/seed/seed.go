// Package seed fills an empty catalogue with demo products for the local stack.
package seed

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersaga/ordersaga/activities/inventory"
)

// Warehouses holds the demo stock.
var Warehouses = []string{"east", "west"}

// currency prices the demo products: the schema's default.
const currency = "USD"

type product struct {
	name, description string
	priceCents        int64
}

var brands = []struct {
	name, prefix string
	items        []product
}{
	{"Acme", "ACME", []product{
		{name: "Field Watch", description: "38 mm steel field watch", priceCents: 12900},
		{name: "Dive Watch", description: "200 m automatic diver", priceCents: 34900},
		{name: "Chronograph", description: "Quartz chronograph, sapphire crystal", priceCents: 21900},
		{name: "Pilot Watch", description: "Large crown, 42 mm", priceCents: 27900},
		{name: "Travel Clock", description: "Folding alarm clock", priceCents: 4900},
		{name: "Leather Strap", description: "20 mm brown leather", priceCents: 3900},
	}},
	{"Northwind", "NW", []product{
		{name: "Trail Jacket", description: "Waterproof shell", priceCents: 18900},
		{name: "Down Vest", description: "650-fill down", priceCents: 12900},
		{name: "Wool Beanie", description: "Merino rib knit", priceCents: 2900},
		{name: "Hiking Socks", description: "Cushioned, three pairs", priceCents: 2400},
		{name: "Rain Pants", description: "Packable, full-length zips", priceCents: 9900},
		{name: "Fleece Pullover", description: "Recycled midweight fleece", priceCents: 7900},
	}},
	{"Lumen", "LUM", []product{
		{name: "Desk Lamp", description: "Dimmable LED arm lamp", priceCents: 8900},
		{name: "Head Torch", description: "400 lumen, rechargeable", priceCents: 4900},
		{name: "Lantern", description: "Camping lantern, 3 modes", priceCents: 3900},
		{name: "Bike Light Set", description: "Front and rear, USB-C", priceCents: 5900},
		{name: "Night Light", description: "Motion sensing, two-pack", priceCents: 1900},
		{name: "Floor Lamp", description: "Linen shade, oak base", priceCents: 15900},
	}},
	{"Kettle & Co", "KCO", []product{
		{name: "Pour-over Kettle", description: "Gooseneck, 1 l", priceCents: 6900},
		{name: "French Press", description: "Double-wall steel, 8 cups", priceCents: 4900},
		{name: "Coffee Grinder", description: "Conical burr, 40 settings", priceCents: 14900},
		{name: "Tea Infuser", description: "Fine mesh steel", priceCents: 1200},
		{name: "Espresso Cups", description: "Set of four, porcelain", priceCents: 2900},
		{name: "Milk Frother", description: "Handheld, battery", priceCents: 1900},
	}},
	{"Papyrus", "PAP", []product{
		{name: "Dot Notebook", description: "A5, 160 pages", priceCents: 2200},
		{name: "Fountain Pen", description: "Fine nib, converter included", priceCents: 5900},
		{name: "Ink Bottle", description: "Blue-black, 50 ml", priceCents: 1400},
		{name: "Desk Pad", description: "Felt, 80 x 30 cm", priceCents: 3400},
		{name: "Pencil Set", description: "Twelve graphite grades", priceCents: 1800},
		{name: "Planner", description: "Undated weekly planner", priceCents: 2600},
	}},
	{"Sonic", "SON", []product{
		{name: "Wireless Earbuds", description: "Noise cancelling, 24 h case", priceCents: 12900},
		{name: "Studio Headphones", description: "Closed back, 32 ohm", priceCents: 17900},
		{name: "Bluetooth Speaker", description: "Waterproof, 12 h", priceCents: 7900},
		{name: "USB Microphone", description: "Cardioid condenser", priceCents: 9900},
		{name: "Cable Kit", description: "USB-C and 3.5 mm, braided", priceCents: 1900},
		{name: "Turntable", description: "Belt drive, built-in preamp", priceCents: 24900},
	}},
}

// Catalogue adds the demo products, with stock in both warehouses, through
// the product service: each stock row has its 'initial' ledger entry.
// Products that exist are left alone, so running it again changes
// nothing. It returns how many it added.
func Catalogue(ctx context.Context, db *pgxpool.Pool) (int, error) {
	var products []inventory.NewProduct
	for bi, b := range brands {
		for i, p := range b.items {
			n := inventory.NewProduct{SKU: fmt.Sprintf("%s-%03d", b.prefix, i+1), Name: p.name, Brand: b.name,
				Description: p.description, PriceCents: p.priceCents, Currency: currency}
			for wi, wh := range Warehouses {
				n.Stock = append(n.Stock, inventory.InitialStock{Warehouse: wh, OnHand: 5 + (bi*7+i*11+wi*13)%40})
			}
			products = append(products, n)
		}
	}
	added, err := inventory.NewCatalog(db).CreateMissing(ctx, products, "demo catalogue", "seed")
	if err != nil {
		return 0, fmt.Errorf("seed catalogue: %w", err)
	}
	return added, nil
}
