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
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"
)

// Roles a user can hold.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// ErrEmailTaken says another account already uses the email.
var ErrEmailTaken = errors.New("email already registered")

// User is an account, without its password hash.
type User struct {
	ID    uuid.UUID
	Email string
	Name  string
	Role  string
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
func (s *Store) Create(ctx context.Context, email, name, password, role string) (User, error) {
	if role != RoleCustomer && role != RoleAdmin {
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
	if _, err := s.Create(ctx, email, "Admin", password, RoleAdmin); err != nil {
		if errors.Is(err, ErrEmailTaken) { // created concurrently
			return "", nil
		}
		return "", err
	}
	return password, nil
}
