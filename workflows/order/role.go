package order

// Role is what a user may do (API.md "Auth"): it is stored with the
// account, carried in the login token's role claim and checked by the
// gateway and the websocket hub.
type Role string

// Roles.
const (
	// RoleCustomer places, follows and cancels their own orders.
	RoleCustomer Role = "customer"
	// RoleAdmin manages the catalogue and sees and cancels every order.
	RoleAdmin Role = "admin"
)

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r == RoleCustomer || r == RoleAdmin }
