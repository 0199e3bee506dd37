package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Weighted is one payment token and its share of the orders.
type Weighted struct {
	Token  string
	Weight int
}

// Tokens is the mix of payment tokens the orders use, drawn by weight.
type Tokens []Weighted

// ParseTokens reads a mix such as "tok_ok=90,tok_declined=10". A token
// without a weight weighs 1, so "tok_ok" alone is every order. The weights
// are relative: "a=1,b=1" is half and half.
func ParseTokens(s string) (Tokens, error) {
	var out Tokens
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		token, weight, hasWeight := strings.Cut(part, "=")
		token = strings.TrimSpace(token)
		w := 1
		if hasWeight {
			n, err := strconv.Atoi(strings.TrimSpace(weight))
			if err != nil || n < 0 {
				return nil, fmt.Errorf("token mix %q: the weight of %s must be a whole number ≥ 0", s, token)
			}
			w = n
		}
		if token == "" {
			return nil, fmt.Errorf("token mix %q: a weight without a token", s)
		}
		if seen[token] {
			return nil, fmt.Errorf("token mix %q: %s appears twice", s, token)
		}
		seen[token] = true
		if w > 0 {
			out = append(out, Weighted{Token: token, Weight: w})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("token mix %q: give at least one token with a weight above 0", s)
	}
	return out, nil
}

// Pick draws a token by weight.
func (t Tokens) Pick(rng *rand.Rand) string {
	total := 0
	for _, w := range t {
		total += w.Weight
	}
	n := rng.IntN(total)
	for _, w := range t {
		if n < w.Weight {
			return w.Token
		}
		n -= w.Weight
	}
	return t[len(t)-1].Token // unreachable: n < total
}

// String writes the mix back as ParseTokens reads it.
func (t Tokens) String() string {
	parts := make([]string, len(t))
	for i, w := range t {
		parts[i] = fmt.Sprintf("%s=%d", w.Token, w.Weight)
	}
	return strings.Join(parts, ",")
}

// Range is an inclusive range of whole numbers, such as lines per order.
type Range struct{ Min, Max int }

// ParseRange reads "2" or "1-3". Both ends are at least 1.
func ParseRange(s string) (Range, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	if !isRange {
		hi = lo
	}
	a, errA := strconv.Atoi(strings.TrimSpace(lo))
	b, errB := strconv.Atoi(strings.TrimSpace(hi))
	if errA != nil || errB != nil || a < 1 || b < a {
		return Range{}, fmt.Errorf("range %q: want N or MIN-MAX with 1 ≤ MIN ≤ MAX", s)
	}
	return Range{a, b}, nil
}

// Pick draws a number in the range, each equally likely.
func (r Range) Pick(rng *rand.Rand) int { return r.Min + rng.IntN(r.Max-r.Min+1) }

// String writes the range back as ParseRange reads it.
func (r Range) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}
