package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Logins decides which sign-in attempts may check a password. It counts
// failed attempts, not sign-ins: many people signing in from one office
// address are not slowed, while guessing is, whether it aims at many
// accounts from one address or at one account from many addresses. Nobody
// can keep an account's owner out by failing on purpose: once an account
// has had too many failures, only the addresses that took part in them
// are refused, so its owner still gets in from any other address, and
// from their own address as soon as their own failures there have decayed.
//
// The limits, per client address (see AddressKey) and per account (the
// email, case-folded, whether or not such an account exists):
//
//   - every attempt per address: 100 at once, then 100 a minute, a ceiling
//     that only scripts reach;
//   - failures per address: 20 at once, then one every 6 s;
//   - failures per account and address: 5 at once, then one a minute;
//   - failures per account: 20 at once, then one every 30 s; past that,
//     the account is softly locked: an address with a failure on this
//     account in its window is refused, any other address may still try.
//
// A successful sign-in forgets the account's failures and its address's
// failures on it, and does not count as a failure of the address.
type Logins struct {
	attempts     *Keyed
	addrFailures *Keyed
	pairFailures *Keyed
	acctFailures *Keyed
}

// NewLogins returns the sign-in limits above on the clock now.
func NewLogins(now func() time.Time) *Logins {
	return &Logins{
		attempts:     New(600*time.Millisecond, 100, now),
		addrFailures: New(6*time.Second, 20, now),
		pairFailures: New(time.Minute, 5, now),
		acctFailures: New(30*time.Second, 20, now),
	}
}

// Refusal says why an attempt was refused and when to retry.
type Refusal struct {
	// Limit names the limit that refused: "attempts", "address_failures",
	// "account_address_failures" or "account_locked".
	Limit string
	// RetryAfter is how long until an attempt could pass that limit.
	RetryAfter time.Duration
}

// Attempt is a sign-in attempt that may check its password. Its failure
// is held from the start (see Hold), so that concurrent guesses cannot
// all pass before the first one fails. End it with Failed, Succeeded or
// Abandoned; only the first of these counts.
type Attempt struct {
	l                *Logins
	pair, acct       string
	addr, pairs, all *Hold
}

// Begin asks whether the client at addr (a client IP) may try to sign in
// to account (the email as sent). It returns an Attempt, or why not.
func (l *Logins) Begin(addr, account string) (*Attempt, *Refusal) {
	addr = AddressKey(addr)
	acct := accountKey(account)
	pair := acct + "|" + addr

	if ok, wait := l.attempts.Allow(addr); !ok {
		return nil, &Refusal{Limit: "attempts", RetryAfter: wait}
	}
	a := &Attempt{l: l, pair: pair, acct: acct}
	if a.addr = l.addrFailures.Hold(addr); !a.addr.OK {
		return nil, &Refusal{Limit: "address_failures", RetryAfter: a.addr.Wait}
	}
	if a.pairs = l.pairFailures.Hold(pair); !a.pairs.OK {
		a.addr.Drop()
		return nil, &Refusal{Limit: "account_address_failures", RetryAfter: a.pairs.Wait}
	}
	if a.all = l.acctFailures.Hold(acct); !a.all.OK && !a.pairs.WasFresh {
		// Locked, and this address failed on this account lately. It may
		// try again when the account has budget again, or when its own
		// failures here have decayed, whichever comes first: so the owner's
		// wait is bounded by the owner's own failures, never an attacker's.
		a.addr.Drop()
		a.pairs.Drop()
		wait := min(a.all.Wait, l.pairFailures.UntilFresh(pair))
		return nil, &Refusal{Limit: "account_locked", RetryAfter: wait}
	}
	// Either within the account's budget, or locked but from an address
	// that has not failed on it: the owner on a device of their own. (A
	// failure then is not taken from the spent account budget, which
	// would only lengthen the lock for everyone.)
	return a, nil
}

// Failed records that the password was wrong.
func (a *Attempt) Failed() {
	a.addr.Keep()
	a.pairs.Keep()
	a.all.Keep()
}

// Succeeded records that the password was right: the account's failures
// and this address's failures on it are forgotten, and the attempt counts
// as no failure.
func (a *Attempt) Succeeded() {
	a.Abandoned()
	a.l.pairFailures.Forget(a.pair)
	a.l.acctFailures.Forget(a.acct)
}

// Abandoned records that the password could not be checked (a dependency
// failed, the client went away): the attempt counts as no failure.
func (a *Attempt) Abandoned() {
	a.addr.Drop()
	a.pairs.Drop()
	a.all.Drop()
}

// accountKey folds the email as the account store does (case-insensitive)
// and hashes it, so that a key's size does not depend on what a client
// sends.
func accountKey(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:16])
}
