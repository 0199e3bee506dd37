// Package accounts creates and looks up the users of the auth schema.
package accounts

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// ErrEmailTaken says another account already uses the email.
var ErrEmailTaken = errors.New("email already registered")

// User is an account, without its password hash.
type User struct {
	ID    uuid.UUID
	Email string
	Name  string
	Role  order.Role
}

// Store reads and writes auth.users.
type Store struct {
	db *pgxpool.Pool
	// cost is bcrypt's work factor; tests lower it.
	cost int
}

// NewStore returns a Store on db hashing with bcrypt's default cost.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db, cost: bcrypt.DefaultCost} }

// Create adds a user. The email is kept as given and compared case-insensitively.
func (s *Store) Create(ctx context.Context, email, name, password string, role order.Role) (User, error) {
	if !role.Valid() {
		return User{}, fmt.Errorf("create user: unknown role %q", role)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return User{}, fmt.Errorf("create user: hash password: %w", err)
	}
	u := User{ID: uuid.New(), Email: strings.TrimSpace(email), Name: name, Role: role}
	_, err = s.db.Exec(ctx, `INSERT INTO auth.users (id, email, name, password_hash, role) VALUES ($1, $2, $3, $4, $5)`,
		u.ID, u.Email, u.Name, string(hash), u.Role)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return User{}, ErrEmailTaken
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// EnsureAdmin creates the admin account email with a random password unless
// it exists. It returns the password when it created the account, "" otherwise.
func (s *Store) EnsureAdmin(ctx context.Context, email string) (string, error) {
	var exists bool
	if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM auth.users WHERE lower(email) = lower($1))`, email).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up admin: %w", err)
	}
	if exists {
		return "", nil
	}
	buf := make([]byte, 12)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	password := base64.RawURLEncoding.EncodeToString(buf)
	if _, err := s.Create(ctx, email, "Admin", password, order.RoleAdmin); err != nil {
		if errors.Is(err, ErrEmailTaken) { // created concurrently
			return "", nil
		}
		return "", err
	}
	return password, nil
}

// ErrBadCredentials says the email is unknown or the password wrong; the
// two are not told apart, so that emails cannot be probed.
var ErrBadCredentials = errors.New("bad credentials")

// dummyHash is compared against when the email is unknown, so that a
// login takes as long whether or not the account exists.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("ordersaga-timing-equaliser"), bcrypt.DefaultCost)

// Authenticate returns the user whose email and password match.
func (s *Store) Authenticate(ctx context.Context, email, password string) (User, error) {
	var u User
	var hash string
	err := s.db.QueryRow(ctx, `SELECT id, email, name, role, password_hash FROM auth.users WHERE lower(email) = lower($1)`, strings.TrimSpace(email)).
		Scan(&u.ID, &u.Email, &u.Name, &u.Role, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return User{}, ErrBadCredentials
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return User{}, ErrBadCredentials
	}
	return u, nil
}

// ErrNotFound says no user has the id.
var ErrNotFound = errors.New("user not found")

// Get returns the user with id.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (User, error) {
	var u User
	err := s.db.QueryRow(ctx, `SELECT id, email, name, role FROM auth.users WHERE id = $1`, id).Scan(&u.ID, &u.Email, &u.Name, &u.Role)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }
