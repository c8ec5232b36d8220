package app

// SetExtendedConnect makes the App believe that net/http does (or does
// not) offer extended CONNECT, for tests of what Serve logs; the returned
// function restores the truth.
func SetExtendedConnect(on bool) (restore func()) {
	old := extendedConnect
	extendedConnect = on
	return func() { extendedConnect = old }
}
