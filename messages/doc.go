// Package messages deals in whole WebSocket messages: text and binary values,
// their assembly from fragments as they are received, and their splitting
// into frames for sending (RFC 6455 §5.4, §5.6).
//
// The package does no I/O. It builds on package frames and, like it, works on
// memory the caller owns and does not allocate on the per-frame path.
//
// # Values
//
// A [Message] is a [Kind] ([KindText] or [KindBinary]) and a payload.
// [Text] and [Binary] build one: messages.Text("hello"),
// messages.Binary(b).
//
// # Receiving
//
// An [Assembler] follows the data frames of a connection and enforces the
// rules that span frames: continuation frames only inside a fragmented
// message and new messages only outside one (RFC 6455 §5.4), a size limit on
// each message, and valid UTF-8 in text messages (RFC 6455 §5.6, §8.1).
//
// A connection that reads payloads into buffers of its own uses the low-level
// form: [Assembler.Begin] with each frame header, before reading the payload,
// so a message over the limit is refused before its excess is buffered;
// [Assembler.Chunk] with the payload as it arrives; [Assembler.End] once the
// frame is read. Code that already has whole frames uses [Assembler.Push],
// which also gathers the payload.
//
// # UTF-8
//
// [UTF8] validates text incrementally. It reports an error as soon as the
// bytes seen so far cannot begin any valid UTF-8 text, so a connection can
// fail with 1007 in the middle of a long message, as RFC 6455 §8.1 asks,
// rather than after buffering all of it.
//
// # Sending
//
// [Fragments] splits a [Message] into frames of a bounded size; see its
// example.
package messages
