// Package ports finds free TCP ports and explains taken ones.
package ports

import (
	"fmt"
	"net"
)

// Free returns a TCP port on 127.0.0.1 that nothing listens on right now.
func Free() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// CheckFree returns an error naming what and the variable that moves it
// when port on 127.0.0.1 is already taken.
func CheckFree(port int, what, hint string) error {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port %d for %s is already taken (is another ordersaga dev running?): stop that process, or %s", port, what, hint)
	}
	return ln.Close()
}
