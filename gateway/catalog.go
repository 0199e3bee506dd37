package gateway

import (
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/internal/apperr"
)

var (
	skuPattern      = regexp.MustCompile(`^[A-Z0-9][A-Z0-9-]{1,63}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

// jsonContentType is what gin's c.JSON sends, for answers encoded before.
const jsonContentType = "application/json; charset=utf-8"

const (
	maxPriceCents = 100_000_000_00 // 100 million in major units
	maxOnHand     = 10_000_000
)

type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

type productCursor struct {
	SKU string `json:"s"`
}

func (s *Server) listProducts(c *gin.Context) {
	f := inventory.Filter{Q: strings.TrimSpace(c.Query("q")), Brand: strings.TrimSpace(c.Query("brand"))}
	var err error
	if f.Limit, err = pageLimit(c); err != nil {
		s.fail(c, err)
		return
	}
	// checkStrings has refused invalid UTF-8 and NUL in every parameter.
	if utf8.RuneCountInString(f.Q) > 100 {
		s.fail(c, apperr.Invalid("q", "q must be at most 100 characters"))
		return
	}
	if utf8.RuneCountInString(f.Brand) > 100 {
		s.fail(c, apperr.Invalid("brand", "brand must be at most 100 characters"))
		return
	}
	for _, p := range []struct {
		name string
		into **int64
	}{{"min_price_cents", &f.MinPrice}, {"max_price_cents", &f.MaxPrice}} {
		if _, ok := c.GetQuery(p.name); ok {
			n, err := queryInt(c, p.name, 0, 0, maxPriceCents)
			if err != nil {
				s.fail(c, err)
				return
			}
			*p.into = &n
		}
	}
	switch v, ok := c.GetQuery("in_stock"); {
	case !ok, v == "false":
	case v == "true":
		f.InStock = true
	default:
		s.fail(c, apperr.Invalid("in_stock", "in_stock must be true or false"))
		return
	}
	if raw := c.Query("cursor"); raw != "" {
		var cur productCursor
		if err := s.cursors.open("products", raw, &cur); err != nil {
			s.fail(c, err)
			return
		}
		f.AfterSKU = cur.SKU
	}
	items, more, err := s.catalog.List(c, f)
	if err != nil {
		s.fail(c, dependency(err, "the catalogue"))
		return
	}
	out := page[inventory.Product]{Items: items}
	if more {
		out.NextCursor = s.cursors.seal("products", productCursor{SKU: items[len(items)-1].SKU})
	}
	c.JSON(http.StatusOK, out)
}

// skuParam reads the :sku path parameter; a malformed one cannot exist.
func (s *Server) skuParam(c *gin.Context) (string, bool) {
	sku := c.Param("sku")
	if !skuPattern.MatchString(sku) {
		s.fail(c, notFound("product "+sku+" not found"))
		return "", false
	}
	return sku, true
}

func (s *Server) getProduct(c *gin.Context) {
	sku, ok := s.skuParam(c)
	if !ok {
		return
	}
	page, err := s.products.Get(c, sku)
	if err != nil {
		s.fail(c, dependency(err, "the catalogue"))
		return
	}
	c.Data(http.StatusOK, jsonContentType, page)
}

type stockJSON struct {
	Warehouse string `json:"warehouse"`
	OnHand    int64  `json:"on_hand"`
}

type createProductRequest struct {
	SKU         string      `json:"sku"`
	Name        string      `json:"name"`
	Brand       string      `json:"brand"`
	Description string      `json:"description"`
	PriceCents  *int64      `json:"price_cents"`
	Currency    string      `json:"currency"`
	Stock       []stockJSON `json:"stock"`
}

func (r *createProductRequest) validate() (inventory.NewProduct, error) {
	n := inventory.NewProduct{SKU: r.SKU, Name: strings.TrimSpace(r.Name), Brand: strings.TrimSpace(r.Brand), Description: r.Description, Currency: r.Currency}
	if !skuPattern.MatchString(r.SKU) {
		return n, apperr.Invalid("sku", "sku must match ^[A-Z0-9][A-Z0-9-]{1,63}$")
	}
	if err := text("name", n.Name, 1, 200); err != nil {
		return n, err
	}
	if err := text("brand", n.Brand, 1, 100); err != nil {
		return n, err
	}
	if err := text("description", n.Description, 0, 5000); err != nil {
		return n, err
	}
	if r.PriceCents == nil || *r.PriceCents < 0 || *r.PriceCents > maxPriceCents {
		return n, apperr.Invalid("price_cents", "price_cents is required: an integer from 0 to %d", int64(maxPriceCents))
	}
	n.PriceCents = *r.PriceCents
	if n.Currency == "" {
		n.Currency = "USD"
	}
	if !currencyPattern.MatchString(n.Currency) {
		return n, apperr.Invalid("currency", "currency must be an ISO 4217 code such as USD")
	}
	if len(r.Stock) > 100 {
		return n, apperr.Invalid("stock", "at most 100 warehouses")
	}
	seen := map[string]bool{}
	for _, st := range r.Stock {
		wh, ok := inventory.Warehouse(st.Warehouse)
		if !ok {
			return n, apperr.Invalid("stock.warehouse", "warehouse must match %s", inventory.WarehousePattern)
		}
		// Codes are case-insensitive: WH-A and wh-a are one warehouse.
		if seen[wh] {
			return n, apperr.Invalid("stock.warehouse", "warehouse %s appears twice", wh)
		}
		seen[wh] = true
		if st.OnHand < 0 || st.OnHand > maxOnHand {
			return n, apperr.Invalid("stock.on_hand", "on_hand must be an integer from 0 to %d", maxOnHand)
		}
		n.Stock = append(n.Stock, inventory.InitialStock{Warehouse: wh, OnHand: int(st.OnHand)})
	}
	return n, nil
}

// text checks a string field's length in characters. decode has refused
// invalid UTF-8 and NUL already; validText here keeps a string built some
// other way from slipping through.
func text(field, v string, lo, hi int) error {
	if !validText(v) {
		return badText(field)
	}
	if n := utf8.RuneCountInString(v); n < lo || n > hi {
		if lo > 0 {
			return apperr.Invalid(field, "%s is required: %d to %d characters", field, lo, hi)
		}
		return apperr.Invalid(field, "%s must be at most %d characters", field, hi)
	}
	return nil
}

func (s *Server) createProduct(c *gin.Context) {
	var req createProductRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	n, err := req.validate()
	if err != nil {
		s.fail(c, err)
		return
	}
	p, err := s.catalog.Create(c, n, "admin:"+claimsOf(c).UserID.String())
	s.products.Invalidate(n.SKU)
	if err != nil {
		s.fail(c, dependency(err, "the catalogue"))
		return
	}
	c.JSON(http.StatusCreated, p)
}

type patchProductRequest struct {
	Name        *string `json:"name"`
	Brand       *string `json:"brand"`
	Description *string `json:"description"`
	PriceCents  *int64  `json:"price_cents"`
	Active      *bool   `json:"active"`
}

func (s *Server) updateProduct(c *gin.Context) {
	sku, ok := s.skuParam(c)
	if !ok {
		return
	}
	var req patchProductRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	checks := []struct {
		field  string
		v      *string
		lo, hi int
	}{{"name", req.Name, 1, 200}, {"brand", req.Brand, 1, 100}, {"description", req.Description, 0, 5000}}
	for _, ch := range checks {
		if ch.v == nil {
			continue
		}
		if ch.field != "description" {
			*ch.v = strings.TrimSpace(*ch.v)
		}
		if err := text(ch.field, *ch.v, ch.lo, ch.hi); err != nil {
			s.fail(c, err)
			return
		}
	}
	if req.PriceCents != nil && (*req.PriceCents < 0 || *req.PriceCents > maxPriceCents) {
		s.fail(c, apperr.Invalid("price_cents", "price_cents must be an integer from 0 to %d", int64(maxPriceCents)))
		return
	}
	p, err := s.catalog.Update(c, sku, inventory.Patch{Name: req.Name, Brand: req.Brand, Description: req.Description, PriceCents: req.PriceCents, Active: req.Active})
	s.products.Invalidate(sku)
	if err != nil {
		s.fail(c, dependency(err, "the catalogue"))
		return
	}
	c.JSON(http.StatusOK, p)
}

func (s *Server) deleteProduct(c *gin.Context) {
	sku, ok := s.skuParam(c)
	if !ok {
		return
	}
	err := s.catalog.Deactivate(c, sku)
	s.products.Invalidate(sku)
	if err != nil {
		s.fail(c, dependency(err, "the catalogue"))
		return
	}
	c.Status(http.StatusNoContent)
}

type adjustStockRequest struct {
	Warehouse string `json:"warehouse"`
	Delta     *int64 `json:"delta"`
	Reason    string `json:"reason"`
}

func (s *Server) adjustStock(c *gin.Context) {
	sku, ok := s.skuParam(c)
	if !ok {
		return
	}
	var req adjustStockRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	warehouse, ok := inventory.Warehouse(req.Warehouse)
	if !ok {
		s.fail(c, apperr.Invalid("warehouse", "warehouse must match %s", inventory.WarehousePattern))
		return
	}
	if req.Delta == nil || *req.Delta == 0 || *req.Delta < -maxOnHand || *req.Delta > maxOnHand {
		s.fail(c, apperr.Invalid("delta", "delta must be a non-zero integer from %d to %d", -maxOnHand, maxOnHand))
		return
	}
	reason := strings.TrimSpace(req.Reason)
	if err := text("reason", reason, 1, 200); err != nil {
		s.fail(c, err)
		return
	}
	p, err := s.catalog.AdjustStock(c, sku, warehouse, int(*req.Delta), reason, "admin:"+claimsOf(c).UserID.String())
	s.products.Invalidate(sku)
	if err != nil {
		s.fail(c, dependency(err, "the catalogue"))
		return
	}
	c.JSON(http.StatusOK, p)
}

// movementCursor is the position after the last movement of a page. It
// names the list it was issued for, so that a cursor of one product's or
// warehouse's history does not page through another's.
type movementCursor struct {
	SKU       string `json:"s"`
	Warehouse string `json:"w,omitempty"`
	ID        int64  `json:"i"`
}

func (s *Server) listMovements(c *gin.Context) {
	sku, ok := s.skuParam(c)
	if !ok {
		return
	}
	f := inventory.MovementFilter{}
	var err error
	if f.Limit, err = pageLimit(c); err != nil {
		s.fail(c, err)
		return
	}
	// An empty warehouse is no filter, as a form's "all warehouses" sends it.
	if raw := c.Query("warehouse"); raw != "" {
		if f.Warehouse, ok = inventory.Warehouse(raw); !ok {
			s.fail(c, apperr.Invalid("warehouse", "warehouse must match %s", inventory.WarehousePattern))
			return
		}
	}
	if raw := c.Query("cursor"); raw != "" {
		var cur movementCursor
		if err := s.cursors.open("movements", raw, &cur); err != nil {
			s.fail(c, err)
			return
		}
		if cur.SKU != sku || cur.Warehouse != f.Warehouse || cur.ID <= 0 {
			s.fail(c, apperr.Invalid("cursor", "cursor belongs to another list: page with the sku and warehouse it was issued for"))
			return
		}
		f.BeforeID = cur.ID
	}
	items, more, err := s.catalog.Movements(c, sku, f)
	if err != nil {
		s.fail(c, dependency(err, "the catalogue"))
		return
	}
	out := page[inventory.Movement]{Items: items}
	if more {
		out.NextCursor = s.cursors.seal("movements", movementCursor{SKU: sku, Warehouse: f.Warehouse, ID: items[len(items)-1].ID})
	}
	c.JSON(http.StatusOK, out)
}
