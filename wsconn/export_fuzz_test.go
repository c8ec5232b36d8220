package wsconn

// DeflateAgreed exposes to the fuzz tests how each side of a connection
// reads the negotiated extensions: on reports whether permessage-deflate
// is on, err whether the extensions were unusable.
func DeflateAgreed(exts []Extension, client bool) (on bool, err error) {
	p, err := deflateFrom(exts, client)
	return p != nil, err
}
