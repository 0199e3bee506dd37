// Package codec encrypts Temporal payloads with AES-256-GCM, so that the
// Temporal server (its database, its UI, anyone with read access to its
// histories) holds order inputs, results, customer ids and payment tokens
// only as ciphertext. It is a converter.PayloadCodec: every client and
// worker wraps the SDK's default data converter with it, and the gateway's
// codec endpoint (Temporal's codec server protocol) decodes payloads for
// operators in the Temporal UI and CLI.
//
// Keys have ids. The first key of a keyring encrypts; every key decrypts;
// each encrypted payload names its key in its metadata. So a key is rotated
// by putting a new key first and keeping the old one listed until no
// history that it encrypted is still needed.
//
// Payloads that are not encrypted pass through Decode unchanged: histories
// recorded before encryption was turned on (and the golden histories of the
// replay tests) still replay.
package codec

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

const (
	// Encoding is the metadata "encoding" of an encrypted payload. The SDK's
	// converters do not know it, so a client without the key fails loudly
	// instead of reading ciphertext as data.
	Encoding = "binary/encrypted"
	// MetadataKeyID names, in an encrypted payload's metadata, the key that
	// encrypted it.
	MetadataKeyID = "encryption-key-id"
	// KeySize is the size of a key: AES-256.
	KeySize = 32
)

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Key is one named AES-256 key.
type Key struct {
	ID     string
	Secret []byte
}

// String names the key without its secret, so that a Key that reaches a log
// or an error message by accident shows nothing to decrypt with.
func (k Key) String() string { return "codec key " + k.ID }

// GoString is String, for %#v.
func (k Key) GoString() string { return k.String() }

// ParseKeys reads a keyring written as comma-separated id:base64key entries
// (standard or URL base64, padded or not), each key 32 bytes. The first
// entry is the key that encrypts. An empty string is an empty keyring.
// Errors name the entry by position and id, never by its key.
func ParseKeys(s string) ([]Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var keys []Key
	seen := map[string]bool{}
	for i, entry := range strings.Split(s, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if !ok {
			return nil, fmt.Errorf("entry %d is not id:base64key", i+1)
		}
		if !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("entry %d: the key id must match %s", i+1, keyIDPattern)
		}
		if seen[id] {
			return nil, fmt.Errorf("entry %d: key id %q is listed twice", i+1, id)
		}
		seen[id] = true
		secret, err := decodeBase64(b64)
		if err != nil {
			return nil, fmt.Errorf("entry %d (%s): the key is not base64", i+1, id)
		}
		if len(secret) != KeySize {
			return nil, fmt.Errorf("entry %d (%s): the key is %d bytes; want %d random bytes (AES-256), e.g. openssl rand -base64 32", i+1, id, len(secret), KeySize)
		}
		if weak(secret) {
			return nil, fmt.Errorf("entry %d (%s): the key is not random; want %d random bytes, e.g. openssl rand -base64 32", i+1, id, KeySize)
		}
		keys = append(keys, Key{ID: id, Secret: secret})
	}
	return keys, nil
}

func decodeBase64(s string) ([]byte, error) {
	var firstErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err == nil {
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// weak catches keys that are plainly not random, such as 32 zero bytes or
// one byte repeated: fewer than 8 distinct bytes in 32 happens to random
// bytes with a probability far below 1e-20.
func weak(secret []byte) bool {
	distinct := map[byte]bool{}
	for _, b := range secret {
		distinct[b] = true
	}
	return len(distinct) < 8
}

// Codec encrypts and decrypts payloads with a keyring. A Codec with no keys
// encrypts nothing and decodes only payloads in clear. It is safe for
// concurrent use.
type Codec struct {
	encryptWith string
	aeads       map[string]cipher.AEAD
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns a codec over keys; the first one encrypts. No keys: payloads
// stay in clear.
func New(keys []Key) (*Codec, error) {
	c := &Codec{aeads: map[string]cipher.AEAD{}}
	for i, k := range keys {
		if _, dup := c.aeads[k.ID]; dup {
			return nil, fmt.Errorf("codec: key id %q is listed twice", k.ID)
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("codec: key %q is %d bytes, want %d", k.ID, len(k.Secret), KeySize)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", k.ID, err)
		}
		c.aeads[k.ID] = aead
		if i == 0 {
			c.encryptWith = k.ID
		}
	}
	return c, nil
}

// Encrypting reports whether Encode encrypts, i.e. whether the codec has keys.
func (c *Codec) Encrypting() bool { return c.encryptWith != "" }

// KeyID is the id of the key that encrypts; "" when the codec has none.
func (c *Codec) KeyID() string { return c.encryptWith }

// DataConverter is the SDK's default data converter with this codec under
// it: what every ordersaga client and worker uses. Search attributes do not
// pass through it (the SDK encodes them with the default converter), so
// visibility queries and the UI's filters keep working.
//
// In workflow code, a payload that this process cannot decrypt (its key is
// not in the keyring) panics instead of returning an error: the SDK then
// fails the workflow task, and Temporal retries it until a worker with the
// key takes it. An error there would fail the workflow itself, for good,
// because one worker was deployed without the keyring.
func (c *Codec) DataConverter() converter.DataConverter {
	return dataConverter{converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)}
}

// dataConverter tells the SDK, through converter.ContextAware, to use
// workflowDataConverter in workflow code.
type dataConverter struct{ converter.DataConverter }

var _ converter.ContextAware = dataConverter{}

// WithWorkflowContext is the converter of workflow code.
func (d dataConverter) WithWorkflowContext(converter.WorkflowContext) converter.DataConverter {
	return workflowDataConverter(d)
}

// WithContext is the converter of clients and activities: d itself.
func (d dataConverter) WithContext(context.Context) converter.DataConverter { return d }

// WithSerializationContext keeps the wrapper around the SDK's own.
func (d dataConverter) WithSerializationContext(sc converter.SerializationContext) converter.DataConverter {
	return dataConverter{converter.WithDataConverterSerializationContext(d.DataConverter, sc)}
}

// workflowDataConverter panics on payloads it cannot decrypt; see DataConverter.
type workflowDataConverter struct{ converter.DataConverter }

// FromPayload decodes p, or panics if p does not decrypt.
func (w workflowDataConverter) FromPayload(p *commonpb.Payload, valuePtr any) error {
	return retryTask(w.DataConverter.FromPayload(p, valuePtr))
}

// FromPayloads decodes ps, or panics if one does not decrypt.
func (w workflowDataConverter) FromPayloads(ps *commonpb.Payloads, valuePtrs ...any) error {
	return retryTask(w.DataConverter.FromPayloads(ps, valuePtrs...))
}

func retryTask(err error) error {
	if errors.Is(err, ErrCannotDecrypt) {
		panic(err)
	}
	return err
}

// Encode encrypts each payload, whole (metadata and data), with the first
// key, a fresh random nonce, and the key id as additional data. Payloads
// that are already encrypted are left as they are, so that encoding twice
// (a CLI that encodes through the codec endpoint, say) does not wrap twice.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	if !c.Encrypting() {
		return payloads, nil
	}
	aead := c.aeads[c.encryptWith]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if encrypted(p) {
			out[i] = p
			continue
		}
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("codec: encode payload %d: %w", i, err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("codec: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(Encoding),
				MetadataKeyID:              []byte(c.encryptWith),
			},
			Data: aead.Seal(nonce, nonce, plain, []byte(c.encryptWith)),
		}
	}
	return out, nil
}

var (
	// ErrCannotDecrypt says an encrypted payload does not decrypt: its key
	// is not in the keyring, or it was altered.
	ErrCannotDecrypt = errors.New("codec: cannot decrypt")
	// ErrUnknownKey says a payload was encrypted with a key that the
	// keyring does not hold; it is also an ErrCannotDecrypt.
	ErrUnknownKey = errors.New("payload encrypted with a key this keyring does not hold")
)

// Decode decrypts each encrypted payload with the key its metadata names;
// other payloads pass through unchanged.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if !encrypted(p) {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return nil, fmt.Errorf("%w: %w: payload %d names key %q; list it in TEMPORAL_CODEC_KEYS", ErrCannotDecrypt, ErrUnknownKey, i, printable(id))
		}
		data := p.GetData()
		if len(data) < aead.NonceSize()+aead.Overhead() {
			return nil, fmt.Errorf("%w: payload %d is too short to be encrypted", ErrCannotDecrypt, i)
		}
		nonce, sealed := data[:aead.NonceSize()], data[aead.NonceSize():]
		plain, err := aead.Open(nil, nonce, sealed, []byte(id))
		if err != nil {
			return nil, fmt.Errorf("%w: payload %d does not decrypt with key %q (altered, or another key with that id)", ErrCannotDecrypt, i, id)
		}
		var decoded commonpb.Payload
		if err := proto.Unmarshal(plain, &decoded); err != nil {
			return nil, fmt.Errorf("%w: payload %d: decrypted data is not a payload: %w", ErrCannotDecrypt, i, err)
		}
		out[i] = &decoded
	}
	return out, nil
}

func encrypted(p *commonpb.Payload) bool {
	return string(p.GetMetadata()[converter.MetadataEncoding]) == Encoding
}

// printable bounds a key id read from a payload before it goes into an
// error message: the payload may come from anyone who can call the codec
// endpoint.
func printable(id string) string {
	if keyIDPattern.MatchString(id) {
		return id
	}
	return "(not a key id)"
}
