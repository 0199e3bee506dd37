package loadgen

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestParseTokens(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Tokens
		bad  bool
	}{
		{in: "tok_ok", want: Tokens{{"tok_ok", 1}}},
		{in: "tok_ok=90,tok_declined=10", want: Tokens{{"tok_ok", 90}, {"tok_declined", 10}}},
		{in: " tok_ok = 3 , tok_slow=0, tok_declined=1 ", want: Tokens{{"tok_ok", 3}, {"tok_declined", 1}}},
		{in: "", bad: true},
		{in: "tok_ok=0", bad: true},
		{in: "tok_ok=-1", bad: true},
		{in: "tok_ok=x", bad: true},
		{in: "=5", bad: true},
		{in: "tok_ok=1,tok_ok=2", bad: true},
	} {
		got, err := ParseTokens(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseTokens(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseTokens(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestTokensPickFollowsTheWeights(t *testing.T) {
	mix, err := ParseTokens("a=90,b=10")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	for range 10_000 {
		counts[mix.Pick(rng)]++
	}
	if counts["a"] < 8800 || counts["a"] > 9200 || counts["a"]+counts["b"] != 10_000 {
		t.Errorf("10000 picks of a=90,b=10 gave %v", counts)
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Range
		bad  bool
	}{
		{in: "2", want: Range{2, 2}},
		{in: "1-3", want: Range{1, 3}},
		{in: " 2 - 5 ", want: Range{2, 5}},
		{in: "0", bad: true},
		{in: "3-1", bad: true},
		{in: "1-", bad: true},
		{in: "a", bad: true},
		{in: "", bad: true},
	} {
		got, err := ParseRange(tc.in)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("ParseRange(%q) = %v, %v; want %v (error: %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[int]bool{}
	for range 1000 {
		n := Range{1, 3}.Pick(rng)
		if n < 1 || n > 3 {
			t.Fatalf("Range{1,3}.Pick = %d", n)
		}
		seen[n] = true
	}
	if len(seen) != 3 {
		t.Errorf("Range{1,3} picked only %v", seen)
	}
}
