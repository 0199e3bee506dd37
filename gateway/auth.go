package gateway

import (
	"errors"
	"math"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/accounts"
	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/ratelimit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

type userJSON struct {
	ID    string     `json:"id"`
	Email string     `json:"email"`
	Name  string     `json:"name"`
	Role  order.Role `json:"role"`
}

func toUserJSON(u accounts.User) userJSON {
	return userJSON{ID: u.ID.String(), Email: u.Email, Name: u.Name, Role: u.Role}
}

type registerRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

func (r registerRequest) validate() error {
	if err := validEmail(r.Email); err != nil {
		return err
	}
	// bcrypt reads at most 72 bytes; longer passwords would be silently cut.
	if utf8.RuneCountInString(r.Password) < 8 || len(r.Password) > 72 {
		return apperr.Invalid("password", "password must be 8 to 72 bytes long")
	}
	name := strings.TrimSpace(r.Name)
	if name == "" || utf8.RuneCountInString(name) > 100 || !utf8.ValidString(name) {
		return apperr.Invalid("name", "name must be 1 to 100 characters")
	}
	return nil
}

func validEmail(s string) error {
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || len(s) > 254 || addr.Name != "" {
		return apperr.Invalid("email", "email must be an address like name@example.com")
	}
	return nil
}

func (s *Server) register(c *gin.Context) {
	var req registerRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := req.validate(); err != nil {
		s.fail(c, err)
		return
	}
	// Counted once the request is valid: that is when it costs a bcrypt
	// hash (a taken email too, which also must not be probed quickly).
	if ok, wait := s.registrations.Allow(ratelimit.AddressKey(c.ClientIP())); !ok {
		s.rateLimited(c, "registrations", wait, "too many registrations from this address; wait and retry")
		return
	}
	u, err := s.accounts.Create(c, req.Email, strings.TrimSpace(req.Name), req.Password, order.RoleCustomer)
	if errors.Is(err, accounts.ErrEmailTaken) {
		s.fail(c, apperr.New(apperr.Conflict, "an account with this email exists"))
		return
	}
	if err != nil {
		s.fail(c, dependency(err, "the account store"))
		return
	}
	c.JSON(http.StatusCreated, toUserJSON(u))
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      userJSON  `json:"user"`
}

func (s *Server) login(c *gin.Context) {
	var req loginRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Email == "" {
		s.fail(c, apperr.Invalid("email", "email is required"))
		return
	}
	if utf8.RuneCountInString(req.Email) > 254 {
		// No account has such an address (registration refuses it), and a
		// huge one would only cost a limiter key and a lookup.
		s.fail(c, apperr.Invalid("email", "email is at most 254 characters"))
		return
	}
	if req.Password == "" {
		s.fail(c, apperr.Invalid("password", "password is required"))
		return
	}
	// Failures are what the limits count (see ratelimit.Logins): an
	// attempt holds one while the password is checked, so that concurrent
	// guesses are counted too. Whatever ends the attempt first counts;
	// the deferred Abandoned only lets go of one that nothing ended (a
	// dependency failed, or a panic).
	attempt, refused := s.logins.Begin(c.ClientIP(), req.Email)
	if refused != nil {
		s.rateLimited(c, refused.Limit, refused.RetryAfter, "too many failed sign-ins; wait and retry")
		return
	}
	defer attempt.Abandoned()
	u, err := s.accounts.Authenticate(c, req.Email, req.Password)
	if errors.Is(err, accounts.ErrBadCredentials) {
		attempt.Failed()
		s.fail(c, apperr.New(apperr.Unauthenticated, "email or password is wrong"))
		return
	}
	if err != nil {
		s.fail(c, dependency(err, "the account store"))
		return
	}
	attempt.Succeeded()
	tok, exp, err := s.tokens.Issue(authn.Claims{UserID: u.ID, Role: u.Role})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, loginResponse{Token: tok, ExpiresAt: exp, User: toUserJSON(u)})
}

// rateLimited answers 429 rate_limited with Retry-After in whole seconds,
// rounded up so that a client that waits that long is let in.
func (s *Server) rateLimited(c *gin.Context, limit string, wait time.Duration, msg string) {
	s.metrics.limited.WithLabelValues(limit).Inc()
	s.log.Debug("rate limited", append(requestFields(c), zap.String("limit", limit), zap.String("client_ip", c.ClientIP()))...)
	c.Header("Retry-After", strconv.Itoa(int(math.Ceil(max(wait, time.Second).Seconds()))))
	s.fail(c, apperr.New(apperr.RateLimited, "%s", msg))
}

func (s *Server) me(c *gin.Context) {
	u, err := s.accounts.Get(c, claimsOf(c).UserID)
	if errors.Is(err, accounts.ErrNotFound) {
		s.fail(c, apperr.New(apperr.Unauthenticated, "the account no longer exists"))
		return
	}
	if err != nil {
		s.fail(c, dependency(err, "the account store"))
		return
	}
	c.JSON(http.StatusOK, toUserJSON(u))
}
