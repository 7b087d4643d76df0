package echo

import (
	"bufio"
	"net"
)

// Server echoes lines back to its clients.
type Server struct {
	Addr    string
	MaxLine int
}

// Handler serves one connection.
type Handler interface {
	Serve(conn net.Conn) error
}

const defaultMaxLine = 4096

// Handle echoes each line of conn.
func (s *Server) Handle(conn net.Conn) error {
	defer conn.Close()
	scanner := bufio.NewScanner(conn)
	for scanner.Scan() {
		if _, err := conn.Write(append(scanner.Bytes(), '\n')); err != nil {
			return err
		}
	}
	return scanner.Err()
}

func NewServer(addr string) *Server {
	return &Server{Addr: addr, MaxLine: defaultMaxLine}
}
