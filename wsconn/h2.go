package wsconn

// HTTP2 reports whether the connection runs over an HTTP/2 stream (RFC
// 8441) rather than a connection of its own. Handlers rarely need to know:
// framing, limits, keep-alive and the closing handshake are the same.
func (c *Conn) HTTP2() bool { return c.http2 }
