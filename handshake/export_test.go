package handshake

// NegotiateDeflate exposes the permessage-deflate negotiation to the
// package's external tests.
var NegotiateDeflate = negotiateDeflate
