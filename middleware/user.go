package middleware

import "context"

type userKey struct{}

// UserFrom returns the user name that BasicAuth or Bearer stored in ctx
// after a successful check, and whether there is one. A WebSocket handler's
// context carries it too, so the handler knows who is on the other end.
func UserFrom(ctx context.Context) (string, bool) {
	user, ok := ctx.Value(userKey{}).(string)
	return user, ok
}

func withUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}
