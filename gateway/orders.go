package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// idempotencyNamespace derives order ids from (customer, Idempotency-Key),
// so that a retried request names the same order and the same workflow.
var idempotencyNamespace = uuid.MustParse("6c0f3f53-3a43-4c6e-9a8e-4b1d5a7e2f10")

type orderItemRequest struct {
	SKU      string `json:"sku"`
	Quantity *int64 `json:"quantity"`
}

type createOrderRequest struct {
	Items         []orderItemRequest `json:"items"`
	PaymentMethod string             `json:"payment_method"`
}

// validate checks the request's shape and returns its items sorted by sku.
func (r createOrderRequest) validate() ([]orderItemRequest, error) {
	if len(r.Items) < 1 || len(r.Items) > 50 {
		return nil, apperr.Invalid("items", "an order has 1 to 50 items")
	}
	items := append([]orderItemRequest(nil), r.Items...)
	for _, it := range items {
		if !skuPattern.MatchString(it.SKU) {
			return nil, apperr.Invalid("items.sku", "sku %q is not a valid sku", truncate(it.SKU, 70))
		}
		if it.Quantity == nil || *it.Quantity < 1 || *it.Quantity > 1000 {
			return nil, apperr.Invalid("items.quantity", "quantity of %s must be an integer from 1 to 1000", it.SKU)
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].SKU < items[j].SKU })
	for i := 1; i < len(items); i++ {
		if items[i].SKU == items[i-1].SKU {
			return nil, apperr.Invalid("items.sku", "sku %s appears more than once", items[i].SKU)
		}
	}
	if !payment.KnownToken(r.PaymentMethod) {
		return nil, apperr.Invalid("payment_method", "payment_method must be a payment token such as tok_ok")
	}
	return items, nil
}

// requestHash identifies what a request asks for, whatever the item order.
func requestHash(items []orderItemRequest, method string) [sha256.Size]byte {
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "%s=%d;", it.SKU, *it.Quantity)
	}
	b.WriteString(method)
	return sha256.Sum256([]byte(b.String()))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (s *Server) createOrder(c *gin.Context) {
	// checkStrings has refused a key that is not valid UTF-8 or holds NUL
	// (PostgreSQL refuses both); API.md and the column bound its length
	// in characters.
	key := c.GetHeader("Idempotency-Key")
	if utf8.RuneCountInString(key) > 255 {
		s.fail(c, apperr.Invalid("Idempotency-Key", "Idempotency-Key is at most 255 characters"))
		return
	}
	var req createOrderRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	items, err := req.validate()
	if err != nil {
		s.fail(c, err)
		return
	}
	customer := claimsOf(c).UserID
	hash := requestHash(items, req.PaymentMethod)
	if key != "" {
		// A retry replays the order its key recorded, before anything is
		// priced: the catalogue may have changed since (a new price, a
		// product withdrawn), and the order was accepted as it was.
		id, found, err := s.orders.FindByKey(c, customer, key, hash)
		if err != nil {
			s.fail(c, dependency(err, "the order store"))
			return
		}
		if found {
			s.replay(c, id)
			return
		}
	}
	skus := make([]string, len(items))
	for i, it := range items {
		skus[i] = it.SKU
	}
	prices, err := s.catalog.Prices(c, skus)
	if err != nil {
		s.fail(c, dependency(err, "the catalogue"))
		return
	}
	n := orders.NewOrder{ID: uuid.New(), CustomerID: customer, PaymentMethod: req.PaymentMethod}
	for _, it := range items {
		p, ok := prices[it.SKU]
		switch {
		case !ok:
			s.fail(c, apperr.New(apperr.UnknownSKU, "sku %s does not exist", it.SKU))
			return
		case !p.Active:
			s.fail(c, apperr.New(apperr.InactiveSKU, "sku %s is no longer sold", it.SKU))
			return
		case n.Currency != "" && p.Currency != n.Currency:
			s.fail(c, apperr.Invalid("items", "all items of an order must be priced in one currency"))
			return
		}
		n.Currency = p.Currency
		n.Lines = append(n.Lines, order.Line{SKU: it.SKU, Name: p.Name, Quantity: int(*it.Quantity), UnitPriceCents: p.PriceCents})
	}

	if key != "" {
		n.ID = uuid.NewSHA1(idempotencyNamespace, []byte(customer.String()+"\x00"+key))
		res, err := s.orders.CreateWithKey(c, n, key, hash)
		if err != nil {
			s.fail(c, dependency(err, "the order store"))
			return
		}
		if res.Existing {
			// A concurrent request with the same key recorded it first.
			s.replay(c, n.ID)
			return
		}
	} else if err := s.orders.CreatePending(c, n); err != nil {
		s.fail(c, dependency(err, "the order store"))
		return
	}
	log := s.log.With(zap.String("order_id", n.ID.String()), zap.String("request_id", requestIDOf(c)))
	log.Info("order accepted", zap.Int64("total_cents", n.Total()), zap.Int("lines", len(n.Lines)))
	// The order is durable: from here a failure to start only delays it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c), s.settings.StartTimeout)
	s.start(ctx, n.Input(s.settings.Timeouts), log)
	cancel()
	s.answerOrder(c, n.ID, http.StatusAccepted)
}

// replay answers a retried POST /orders with the order its key recorded,
// as stored (200). If that order's workflow was never started (the first
// request's start failed, or its gateway died), it starts it now from the
// stored lines and prices; an order whose workflow ran is never started
// again.
func (s *Server) replay(c *gin.Context, id uuid.UUID) {
	log := s.log.With(zap.String("order_id", id.String()), zap.String("request_id", requestIDOf(c)))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c), s.settings.StartTimeout)
	in, unstarted, err := s.orders.UnstartedInput(ctx, id, s.settings.Timeouts)
	switch {
	case err != nil:
		log.Warn("replay: could not tell whether the order's workflow was started; the starter will see to it", zap.Error(err))
	case unstarted:
		log.Info("replay: starting the workflow of an order accepted earlier")
		s.start(ctx, in, log)
	}
	cancel()
	s.answerOrder(c, id, http.StatusOK)
}

// answerOrder answers the order id with status and its Location.
func (s *Server) answerOrder(c *gin.Context, id uuid.UUID, status int) {
	o, err := s.orders.Get(c, id)
	if err != nil {
		s.fail(c, dependency(err, "the order store"))
		return
	}
	c.Header("Location", "/api/v1/orders/"+id.String())
	c.JSON(status, o)
}

// start starts the order's workflow within ctx. When Temporal does not
// answer in time the order stays PENDING without a workflow, and the order
// worker's starter runs it.
func (s *Server) start(ctx context.Context, in order.Input, log *zap.Logger) {
	if err := order.Start(ctx, s.temporal, in); err != nil {
		log.Warn("could not start the order's workflow; the starter will", zap.Error(err))
		return
	}
	if err := s.orders.MarkStarted(ctx, in.OrderID); err != nil {
		log.Warn("could not mark the workflow started; the starter will find it running", zap.Error(err))
	}
}

// visibleOrder loads the :id order if the caller may see it. Another
// customer's order is not found, so that its existence does not leak.
func (s *Server) visibleOrder(c *gin.Context) (orders.Order, bool) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		s.fail(c, notFound("order not found"))
		return orders.Order{}, false
	}
	o, err := s.orders.Get(c, id)
	if err != nil {
		s.fail(c, dependency(err, "the order store"))
		return orders.Order{}, false
	}
	if cl := claimsOf(c); cl.Role != order.RoleAdmin && o.CustomerID != cl.UserID {
		s.fail(c, notFound("order not found"))
		return orders.Order{}, false
	}
	return o, true
}

func (s *Server) getOrder(c *gin.Context) {
	if o, ok := s.visibleOrder(c); ok {
		c.JSON(http.StatusOK, o)
	}
}

func (s *Server) listOrders(c *gin.Context) {
	cl := claimsOf(c)
	f := orders.ListFilter{Status: order.Status(c.Query("status"))}
	if cl.Role != order.RoleAdmin {
		f.CustomerID = cl.UserID
	}
	if f.Status != "" && !f.Status.Valid() {
		s.fail(c, apperr.Invalid("status", "status must be one of %s", statusList()))
		return
	}
	var err error
	if f.Limit, err = pageLimit(c); err != nil {
		s.fail(c, err)
		return
	}
	if raw := c.Query("cursor"); raw != "" {
		var cur orders.Cursor
		if err := s.cursors.open("orders", raw, &cur); err != nil {
			s.fail(c, err)
			return
		}
		f.After = &cur
	}
	list, next, err := s.orders.List(c, f)
	if err != nil {
		s.fail(c, dependency(err, "the order store"))
		return
	}
	out := page[orders.Order]{Items: list}
	if next != nil {
		out.NextCursor = s.cursors.seal("orders", next)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) orderEvents(c *gin.Context) {
	after, err := queryInt(c, "after_seq", 0, 0, 1<<31-1)
	if err != nil {
		s.fail(c, err)
		return
	}
	o, ok := s.visibleOrder(c)
	if !ok {
		return
	}
	events, err := s.outbox.Events(c, o.ID, int(after))
	if err != nil {
		s.fail(c, dependency(err, "the order store"))
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": events})
}

type cancelRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) cancelOrder(c *gin.Context) {
	var req cancelRequest
	if err := decodeOptional(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := text("reason", req.Reason, 0, 500); err != nil {
		s.fail(c, err)
		return
	}
	o, ok := s.visibleOrder(c)
	if !ok {
		return
	}
	if o.Status.Terminal() {
		s.fail(c, apperr.New(apperr.Conflict, "the order is already %s", o.Status))
		return
	}
	cl := claimsOf(c)
	log := s.log.With(zap.String("order_id", o.ID.String()), zap.String("request_id", requestIDOf(c)))
	if err := s.cancel(c, o, cl, log); err != nil {
		s.fail(c, err)
		return
	}
	log.Info("order cancellation accepted", zap.String("by", string(cl.Role)))
	o, err := s.orders.Get(c, o.ID)
	if err != nil {
		s.fail(c, dependency(err, "the order store"))
		return
	}
	c.JSON(http.StatusOK, o)
}

// cancel sends the workflow's cancel update. An order whose workflow was
// never started (Temporal was down when it was accepted) is started first,
// so that it is cancelled by the same saga that would have run it.
func (s *Server) cancel(c *gin.Context, o orders.Order, cl authn.Claims, log *zap.Logger) error {
	ctx, done := context.WithTimeout(c, s.settings.CancelTimeout)
	defer done()
	reason := order.ReasonCustomer
	if cl.Role == order.RoleAdmin {
		reason = order.ReasonAdmin
	}
	update := func() error {
		h, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID:   order.WorkflowID(o.ID.String()),
			UpdateName:   order.UpdateCancel,
			Args:         []any{order.CancelRequest{Reason: reason}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err != nil {
			return err
		}
		var v order.View
		return h.Get(ctx, &v)
	}
	err := update()
	var notFoundErr *serviceerror.NotFound
	if errors.As(err, &notFoundErr) {
		cur, gerr := s.orders.Get(ctx, o.ID)
		if gerr == nil && cur.Status.Terminal() {
			return apperr.New(apperr.Conflict, "the order is already %s", cur.Status)
		}
		in, unstarted, ierr := s.orders.UnstartedInput(ctx, o.ID, s.settings.Timeouts)
		if ierr != nil {
			return dependency(ierr, "the order store")
		}
		if !unstarted {
			// Its workflow ran and Temporal no longer has it: starting one
			// now would run the order a second time.
			log.Error("cancel: the order's workflow is gone but the order is not finished; it needs an operator")
			return apperr.New(apperr.Conflict, "the order can no longer be cancelled")
		}
		if serr := order.Start(ctx, s.temporal, in); serr != nil {
			log.Warn("cancel: could not start the workflow", zap.Error(serr))
			return unavailable("the workflow service")
		}
		if merr := s.orders.MarkStarted(ctx, o.ID.String()); merr != nil {
			log.Warn("cancel: could not mark the workflow started; the starter will find it running", zap.Error(merr))
		}
		err = update()
	}
	var appErr *temporal.ApplicationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &appErr):
		// The validator refused: terminal, capture issued, or being rejected.
		return apperr.New(apperr.Conflict, "the order can no longer be cancelled: %s", appErr.Message())
	case errors.As(err, &notFoundErr):
		return apperr.New(apperr.Conflict, "the order can no longer be cancelled")
	default:
		log.Warn("cancel update failed", zap.Error(err))
		return unavailable("the workflow service")
	}
}

// statusList names every status, for an error message.
func statusList() string {
	names := make([]string, 0, len(order.Statuses()))
	for _, st := range order.Statuses() {
		names = append(names, string(st))
	}
	return strings.Join(names, ", ")
}
