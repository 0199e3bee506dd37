package gateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/ordersaga/ordersaga/internal/codec"
	"github.com/ordersaga/ordersaga/internal/localstack/temporalserver"
	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/replay"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
	"github.com/ordersaga/ordersaga/workflows/order/saga"
)

// rawHistory reads a workflow's history as the Temporal server stores it,
// with a client that has no codec.
func rawHistory(t *testing.T, c client.Client, workflowID string) *historypb.History {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, e)
	}
	return h
}

func payloadsJSON(t *testing.T, ps ...*commonpb.Payload) []byte {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func payloadsOf(t *testing.T, r response) []*commonpb.Payload {
	t.Helper()
	var out commonpb.Payloads
	if err := protojson.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("codec answer %s: %v", r.Body, err)
	}
	return out.GetPayloads()
}

// TestPayloadsAreEncrypted places an order through the gateway and reads
// its workflow's history as the Temporal server stores it: the input and
// every other payload are encrypted with the current key, the payment
// token and the sku appear nowhere in it, and the search attributes are
// still readable and queryable. An admin decodes the input through the
// gateway's codec endpoint; nobody else may.
func TestPayloadsAreEncrypted(t *testing.T) {
	addr, ns := testkit.NewNamespace(t)
	s := newStack(t, options{temporalAddr: addr, namespace: ns})
	s.product("CODEC-SKU-1", 1500, map[string]int{"east": 10})
	tok, customerID := s.customer()
	r := s.placeOrder(tok, "tok_ok", "CODEC-SKU-1", 2)
	var o orderJSON
	r.json(t, &o)
	s.waitStatus(tok, o.ID, time.Minute, "CONFIRMED")

	plain := testkit.PlainTemporalClient(t, addr, ns)
	h := rawHistory(t, plain, order.WorkflowID(o.ID))
	started := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes()
	input := started.GetInput().GetPayloads()
	if len(input) != 1 {
		t.Fatalf("workflow input has %d payloads", len(input))
	}
	md := input[0].GetMetadata()
	if string(md[converter.MetadataEncoding]) != codec.Encoding || string(md[codec.MetadataKeyID]) != "test-2" {
		t.Errorf("input payload metadata %q, want encoding %s and key test-2", md, codec.Encoding)
	}
	raw, err := proto.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{"tok_ok", "CODEC-SKU-1"} {
		if bytes.Contains(raw, []byte(clear)) {
			t.Errorf("the stored history holds %q in clear", clear)
		}
	}
	// Every payload but the search attributes is encrypted: none other
	// is JSON in clear.
	encrypted := 0
	for _, e := range h.GetEvents() {
		e = proto.Clone(e).(*historypb.HistoryEvent)
		if a := e.GetWorkflowExecutionStartedEventAttributes(); a != nil {
			a.SearchAttributes = nil
		}
		if a := e.GetUpsertWorkflowSearchAttributesEventAttributes(); a != nil {
			a.SearchAttributes = nil
		}
		b, _ := proto.Marshal(e)
		if bytes.Contains(b, []byte(converter.MetadataEncodingJSON)) {
			j, _ := protojson.Marshal(e)
			t.Errorf("event %d has a payload in clear: %s", e.GetEventId(), j)
		}
		encrypted += bytes.Count(b, []byte(codec.Encoding))
	}
	if encrypted < 5 {
		t.Errorf("only %d encrypted payloads in %d events", encrypted, len(h.GetEvents()))
	}

	// Search attributes are not payloads the codec sees: readable and
	// queryable without keys.
	var fromSA string
	if err := converter.GetDefaultDataConverter().FromPayload(started.GetSearchAttributes().GetIndexedFields()["CustomerId"], &fromSA); err != nil || fromSA != customerID {
		t.Errorf("CustomerId search attribute %q (%v), want %s", fromSA, err, customerID)
	}
	query := fmt.Sprintf(`CustomerId = %q AND OrderStatus = "CONFIRMED"`, customerID)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := plain.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns, Query: query})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetExecutions()) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s found %d workflows, want 1", query, len(resp.GetExecutions()))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The codec endpoint, for admins only.
	body := payloadsJSON(t, input...)
	if r := s.do("POST", "/api/v1/codec/decode", "", body); r.Status != 401 || r.errCode() != "unauthenticated" {
		t.Errorf("decode without a token: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/api/v1/codec/decode", tok, body); r.Status != 403 || r.errCode() != "forbidden" {
		t.Errorf("decode with a customer's token: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/api/v1/codec/decode", "not-a-token", body); r.Status != 401 {
		t.Errorf("decode with a forged token: %d %s", r.Status, r.Body)
	}
	r = s.do("POST", "/api/v1/codec/decode", s.admin, body)
	if r.Status != 200 {
		t.Fatalf("decode as admin: %d %s", r.Status, r.Body)
	}
	decoded := payloadsOf(t, r)
	if len(decoded) != 1 || string(decoded[0].GetMetadata()[converter.MetadataEncoding]) != converter.MetadataEncodingJSON {
		t.Fatalf("decoded %v", decoded)
	}
	var in order.Input
	if err := converter.GetDefaultDataConverter().FromPayload(decoded[0], &in); err != nil {
		t.Fatal(err)
	}
	if in.OrderID != o.ID || in.CustomerID != customerID || in.PaymentMethod != "tok_ok" || len(in.Lines) != 1 || in.Lines[0].SKU != "CODEC-SKU-1" {
		t.Errorf("decoded input %+v", in)
	}

	// And encode: what the CLI sends when it starts or signals with input.
	r = s.do("POST", "/api/v1/codec/encode", s.admin, payloadsJSON(t, decoded...))
	if r.Status != 200 {
		t.Fatalf("encode as admin: %d %s", r.Status, r.Body)
	}
	reencoded := payloadsOf(t, r)
	if string(reencoded[0].GetMetadata()[codec.MetadataKeyID]) != "test-2" {
		t.Errorf("encoded %v", reencoded)
	}
	if r := s.do("POST", "/api/v1/codec/encode", tok, payloadsJSON(t, decoded...)); r.Status != 403 {
		t.Errorf("encode with a customer's token: %d %s", r.Status, r.Body)
	}

	// The history replays with the codec, and only with it.
	log := logging.Temporal(testkit.Logger().WithOptions(zap.IncreaseLevel(zap.ErrorLevel)))
	hist := replay.History{Source: "server", WorkflowID: order.WorkflowID(o.ID), History: h}
	if err := replay.New(saga.OrderWorkflow, log, replay.WithDataConverter(testkit.Codec().DataConverter())).Replay(hist); err != nil {
		t.Errorf("the encrypted history does not replay with the codec: %v", err)
	}
	if err := replay.New(saga.OrderWorkflow, log).Replay(hist); err == nil {
		t.Error("the encrypted history replays without the keys: is it encrypted?")
	}

	// The pinned CLI shows the decoded history through the endpoint, as
	// docs/operators.md tells operators to run it.
	cli, err := temporalserver.Binary(context.Background(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// show returns the payment token of the workflow's input as the CLI
	// shows it, or "" if it shows none.
	show := func(auth string) string {
		args := []string{"workflow", "show", "--address", addr, "--namespace", ns, "--workflow-id", order.WorkflowID(o.ID),
			"--output", "json", "--codec-endpoint", s.url + "/api/v1/codec", "--codec-auth", auth}
		out, err := exec.Command(cli, args...).Output()
		if err != nil {
			return ""
		}
		shown, err := replay.Parse(out)
		if err != nil {
			t.Fatalf("temporal workflow show: %v\n%.1000s", err, out)
		}
		var in order.Input
		attrs := shown.History.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes()
		_ = converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &in)
		return in.PaymentMethod
	}
	if got := show("Bearer " + s.admin); got != "tok_ok" {
		t.Errorf("temporal workflow show --codec-auth 'Bearer ADMIN' shows payment method %q, want the decoded tok_ok", got)
	}
	if got := show("Bearer " + tok); got != "" {
		t.Errorf("temporal workflow show with a customer's token shows payment method %q", got)
	}
}

// TestCodecKeyRotation: data encrypted with an older key decodes while that
// key is listed (testkit's "test-1", after "test-2"); data of a key that is
// no longer listed is refused with 400, and so is a tampered payload.
func TestCodecKeyRotation(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	clear, err := converter.GetDefaultDataConverter().ToPayload(order.Input{OrderID: "o-1", PaymentMethod: "tok_ok"})
	if err != nil {
		t.Fatal(err)
	}
	encryptWith := func(ring string) *commonpb.Payload {
		keys, err := codec.ParseKeys(ring)
		if err != nil {
			t.Fatal(err)
		}
		c, err := codec.New(keys)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.Encode([]*commonpb.Payload{clear})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	_, older, _ := strings.Cut(testkit.CodecKeys, ",") // "test-1:…"
	byOld := encryptWith(older)
	if string(byOld.GetMetadata()[codec.MetadataKeyID]) != "test-1" {
		t.Fatalf("older key %v", byOld.GetMetadata())
	}
	r := s.do("POST", "/api/v1/codec/decode", s.admin, payloadsJSON(t, byOld, clear))
	if r.Status != 200 {
		t.Fatalf("decode of the old key's data: %d %s", r.Status, r.Body)
	}
	got := payloadsOf(t, r)
	if len(got) != 2 || !proto.Equal(got[0], clear) || !proto.Equal(got[1], clear) {
		t.Errorf("decoded %v, want the clear payload twice (old key, and passed through)", got)
	}

	retired := make([]byte, 32)
	_, _ = rand.Read(retired)
	r = s.do("POST", "/api/v1/codec/decode", s.admin, payloadsJSON(t, encryptWith("retired:"+base64.StdEncoding.EncodeToString(retired))))
	if r.Status != 400 || r.errCode() != "invalid_argument" || r.errField() != "payloads" || !strings.Contains(string(r.Body), "TEMPORAL_CODEC_KEYS") {
		t.Errorf("decode of a retired key's data: %d %s", r.Status, r.Body)
	}
	tampered := proto.Clone(byOld).(*commonpb.Payload)
	tampered.Data[len(tampered.Data)-1] ^= 1
	r = s.do("POST", "/api/v1/codec/decode", s.admin, payloadsJSON(t, tampered))
	if r.Status != 400 || r.errCode() != "invalid_argument" {
		t.Errorf("decode of a tampered payload: %d %s", r.Status, r.Body)
	}

	for _, bad := range []string{`not json`, `{"payloads":[{"data":"%%%"}]}`, `{"payloads":"x"}`, `{"unknown":1}`, `[]`} {
		if r := s.do("POST", "/api/v1/codec/decode", s.admin, bad); r.Status != 400 || r.errCode() != "invalid_json" {
			t.Errorf("decode of %s: %d %s", bad, r.Status, r.Body)
		}
	}
	if r := s.do("POST", "/api/v1/codec/decode", s.admin, `{"payloads":[]}`); r.Status != 200 || !json.Valid(r.Body) || !strings.Contains(string(r.Body), `"payloads":[]`) {
		t.Errorf("decode of no payloads: %d %s", r.Status, r.Body)
	}
}

// TestCodecSessionCookie: the Temporal UI sends cookies, not our bearer
// token. An admin's POST /codec/session sets an HttpOnly, SameSite=Strict
// cookie scoped to the codec endpoints, which then decode with it alone;
// the cookie of a customer or a forged one is refused, and no other route
// takes the cookie for a token.
func TestCodecSessionCookie(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	customer, _ := s.customer()
	clear, _ := converter.GetDefaultDataConverter().ToPayload("hello")
	enc, err := testkit.Codec().Encode([]*commonpb.Payload{clear})
	if err != nil {
		t.Fatal(err)
	}
	body := payloadsJSON(t, enc...)

	if r := s.do("POST", "/api/v1/codec/session", "", nil); r.Status != 401 {
		t.Errorf("session without a token: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/api/v1/codec/session", customer, nil); r.Status != 403 || r.Header.Get("Set-Cookie") != "" {
		t.Errorf("session with a customer's token: %d %s %q", r.Status, r.Body, r.Header.Get("Set-Cookie"))
	}
	r := s.do("POST", "/api/v1/codec/session", s.admin, nil)
	set := r.Header.Get("Set-Cookie")
	if r.Status != 204 || !strings.HasPrefix(set, "ordersaga_codec="+s.admin+";") {
		t.Fatalf("session as admin: %d %q", r.Status, set)
	}
	for _, attr := range []string{"Path=/api/v1/codec", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(set, attr) {
			t.Errorf("cookie %q lacks %s", set, attr)
		}
	}

	cookie := func(tok string) []string { return []string{"Cookie", "ordersaga_codec=" + tok} }
	r = s.do("POST", "/api/v1/codec/decode", "", body, cookie(s.admin)...)
	if r.Status != 200 || !proto.Equal(payloadsOf(t, r)[0], clear) {
		t.Errorf("decode with the admin's cookie: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/api/v1/codec/decode", "", body, cookie(customer)...); r.Status != 403 {
		t.Errorf("decode with a customer's token in the cookie: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/api/v1/codec/decode", "", body, cookie("forged")...); r.Status != 401 {
		t.Errorf("decode with a forged cookie: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/api/v1/system/status", "", nil, cookie(s.admin)...); r.Status != 401 {
		t.Errorf("another admin route took the codec cookie: %d %s", r.Status, r.Body)
	}

	r = s.do("DELETE", "/api/v1/codec/session", "", nil)
	if set := r.Header.Get("Set-Cookie"); r.Status != 204 || !strings.Contains(set, "ordersaga_codec=;") || !strings.Contains(set, "Max-Age=0") {
		t.Errorf("end of session: %d %q", r.Status, set)
	}
}
