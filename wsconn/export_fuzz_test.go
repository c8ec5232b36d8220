package wsconn

import "github.com/gobwas/httphead"

// DeflateAgreed exposes to the fuzz tests how each side of a connection
// reads the negotiated extensions: on reports whether permessage-deflate
// is on, err whether the extensions were unusable.
func DeflateAgreed(exts []httphead.Option, client bool) (on bool, err error) {
	p, err := deflateFrom(exts, client)
	return p != nil, err
}
