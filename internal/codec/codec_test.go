package codec_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/ordersaga/ordersaga/internal/codec"
)

func randomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, codec.KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func mustCodec(t *testing.T, ring string) *codec.Codec {
	t.Helper()
	keys, err := codec.ParseKeys(ring)
	if err != nil {
		t.Fatal(err)
	}
	c, err := codec.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type orderInput struct {
	OrderID       string
	CustomerID    string
	PaymentMethod string
}

var in = orderInput{OrderID: "7f1a3c52-9a0e-4c1b-8d7e-2f4b6a8c0d1e", CustomerID: "0b9c8d7e-6f5a-4b3c-2d1e-0f9a8b7c6d5e", PaymentMethod: "tok_ok"}

func TestRoundTripHidesTheData(t *testing.T) {
	c := mustCodec(t, "k2:"+randomKey(t)+",k1:"+randomKey(t))
	dc := c.DataConverter()
	p, err := dc.ToPayload(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.GetMetadata()[converter.MetadataEncoding]); got != codec.Encoding {
		t.Errorf("encoding %q, want %q", got, codec.Encoding)
	}
	if got := string(p.GetMetadata()[codec.MetadataKeyID]); got != "k2" {
		t.Errorf("key id %q, want the first key k2", got)
	}
	raw, _ := proto.Marshal(p)
	for _, clear := range []string{in.OrderID, in.CustomerID, in.PaymentMethod, "json/plain"} {
		if bytes.Contains(raw, []byte(clear)) {
			t.Errorf("the encrypted payload holds %q in clear", clear)
		}
	}
	var out orderInput
	if err := dc.FromPayload(p, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("round trip gave %+v", out)
	}
	// A fresh nonce each time: equal inputs do not give equal ciphertexts.
	p2, _ := dc.ToPayload(in)
	if bytes.Equal(p.GetData(), p2.GetData()) {
		t.Error("two encryptions of one value are equal")
	}
}

func TestRotation(t *testing.T) {
	old, current := "old:"+randomKey(t), "new:"+randomKey(t)
	before := mustCodec(t, old)
	p, err := before.DataConverter().ToPayload(in)
	if err != nil {
		t.Fatal(err)
	}

	// Rotated: the new key encrypts, the old one is still listed.
	rotated := mustCodec(t, current+","+old)
	var out orderInput
	if err := rotated.DataConverter().FromPayload(p, &out); err != nil || out != in {
		t.Fatalf("data of the old key after rotation: %+v, %v", out, err)
	}
	q, _ := rotated.DataConverter().ToPayload(in)
	if got := string(q.GetMetadata()[codec.MetadataKeyID]); got != "new" {
		t.Errorf("after rotation new data uses key %q", got)
	}

	// Retired: the old key is gone, and its data says which key it needs.
	retired := mustCodec(t, current)
	err = retired.DataConverter().FromPayload(p, &out)
	if !errors.Is(err, codec.ErrUnknownKey) || !strings.Contains(err.Error(), `"old"`) {
		t.Errorf("data of a retired key: %v, want ErrUnknownKey naming it", err)
	}
}

func TestClearPayloadsPassThrough(t *testing.T) {
	clearPayload, err := converter.GetDefaultDataConverter().ToPayload(in)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*codec.Codec{"with keys": mustCodec(t, "k:"+randomKey(t)), "without keys": mustCodec(t, "")} {
		t.Run(name, func(t *testing.T) {
			out, err := c.Decode([]*commonpb.Payload{clearPayload})
			if err != nil || !proto.Equal(out[0], clearPayload) {
				t.Errorf("a payload in clear should pass Decode unchanged: %v %v", out, err)
			}
		})
	}
	// No keys: Encode leaves payloads in clear, and encrypted ones fail
	// Decode instead of being read as data.
	none := mustCodec(t, "")
	if none.Encrypting() {
		t.Error("a codec without keys says it encrypts")
	}
	out, _ := none.Encode([]*commonpb.Payload{clearPayload})
	if !proto.Equal(out[0], clearPayload) {
		t.Error("a codec without keys changed a payload")
	}
	enc, _ := mustCodec(t, "k:"+randomKey(t)).Encode([]*commonpb.Payload{clearPayload})
	if _, err := none.Decode(enc); !errors.Is(err, codec.ErrUnknownKey) {
		t.Errorf("decoding an encrypted payload without keys: %v", err)
	}
}

func TestEncodeDoesNotWrapTwice(t *testing.T) {
	c := mustCodec(t, "k:"+randomKey(t))
	p, _ := converter.GetDefaultDataConverter().ToPayload(in)
	once, _ := c.Encode([]*commonpb.Payload{p})
	twice, err := c.Encode(once)
	if err != nil || !proto.Equal(once[0], twice[0]) {
		t.Fatalf("encoding an encrypted payload changed it: %v", err)
	}
	back, err := c.Decode(twice)
	if err != nil || !proto.Equal(back[0], p) {
		t.Errorf("one Decode should give the clear payload back: %v", err)
	}
}

func TestTamperedPayloadsFail(t *testing.T) {
	key := randomKey(t)
	c := mustCodec(t, "k:"+key)
	p, _ := converter.GetDefaultDataConverter().ToPayload(in)
	enc, _ := c.Encode([]*commonpb.Payload{p})
	for name, change := range map[string]func(*commonpb.Payload){
		"flipped bit": func(p *commonpb.Payload) { p.Data[len(p.Data)-1] ^= 1 },
		"truncated":   func(p *commonpb.Payload) { p.Data = p.Data[:10] },
		"empty":       func(p *commonpb.Payload) { p.Data = nil },
		"other id": func(p *commonpb.Payload) {
			p.Metadata[codec.MetadataKeyID] = []byte("k2")
		},
	} {
		t.Run(name, func(t *testing.T) {
			bad := proto.Clone(enc[0]).(*commonpb.Payload)
			change(bad)
			// k2 is the same key under another id: the id is bound to the ciphertext.
			cc := mustCodec(t, "k:"+key+",k2:"+key)
			if _, err := cc.Decode([]*commonpb.Payload{bad}); err == nil {
				t.Error("a changed payload decoded")
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	key := randomKey(t)
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	zeros := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct {
		ring, want string
	}{
		{"k1", "not id:base64key"},
		{"k1:" + key + ",k1:" + randomKey(t), "listed twice"},
		{"bad id!:" + key, "key id"},
		{"k1:not-base64!!", "not base64"},
		{"k1:" + short, "16 bytes"},
		{"k1:" + zeros, "not random"},
		{"k1:" + key + ",", "entry 2"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := codec.ParseKeys(tc.ring)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseKeys: %v, want an error saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), short) {
				t.Errorf("the error shows a key: %v", err)
			}
		})
	}
	// Every base64 flavour operators may paste.
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		keys, err := codec.ParseKeys(" a:" + enc.EncodeToString(raw) + " , b:" + key)
		if err != nil || len(keys) != 2 || keys[0].ID != "a" || !bytes.Equal(keys[0].Secret, raw) {
			t.Errorf("ParseKeys: %v %v", keys, err)
		}
		if s := fmt.Sprintf("%v %+v %#v", keys, keys, keys); strings.Contains(s, enc.EncodeToString(raw)) || strings.Contains(s, fmt.Sprint(raw)) {
			t.Errorf("printing keys shows them: %s", s)
		}
	}
}
