package wal_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgward/pgward/wal"
)

const fakeSegSize = 1 << 20

// fakeWalsender is a scripted walsender: it accepts one replication
// connection, answers START_REPLICATION, then runs script.
type fakeWalsender struct {
	t      *testing.T
	ln     net.Listener
	script func(b *pgproto3.Backend, raw net.Conn)
	done   chan error
}

func startFake(t *testing.T, script func(b *pgproto3.Backend, raw net.Conn)) *fakeWalsender {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeWalsender{t: t, ln: ln, script: script, done: make(chan error, 1)}
	go f.serve()
	t.Cleanup(func() { ln.Close() })
	return f
}

func (f *fakeWalsender) serve() {
	conn, err := f.ln.Accept()
	if err != nil {
		f.done <- err
		return
	}
	defer conn.Close()
	b := pgproto3.NewBackend(conn, conn)
	if _, err := b.ReceiveStartupMessage(); err != nil {
		f.done <- err
		return
	}
	b.Send(&pgproto3.AuthenticationOk{})
	b.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.18"})
	b.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	b.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := b.Flush(); err != nil {
		f.done <- err
		return
	}
	msg, err := b.Receive()
	if err != nil {
		f.done <- err
		return
	}
	q, ok := msg.(*pgproto3.Query)
	if !ok || !bytes.HasPrefix([]byte(q.String), []byte("START_REPLICATION SLOT s PHYSICAL 0/100000 TIMELINE 1")) {
		f.done <- fmt.Errorf("unexpected first command %#v", msg)
		return
	}
	b.Send(&pgproto3.CopyBothResponse{})
	b.Flush()
	f.script(b, conn)
	f.done <- nil
}

func xlogData(start, serverEnd uint64, data []byte) []byte {
	m := []byte{'w'}
	m = binary.BigEndian.AppendUint64(m, start)
	m = binary.BigEndian.AppendUint64(m, serverEnd)
	m = binary.BigEndian.AppendUint64(m, 0)
	return append(m, data...)
}

func keepalive(serverEnd uint64, reply bool) []byte {
	m := []byte{'k'}
	m = binary.BigEndian.AppendUint64(m, serverEnd)
	m = binary.BigEndian.AppendUint64(m, 0)
	if reply {
		return append(m, 1)
	}
	return append(m, 0)
}

// status reads the client's next standby status update.
func status(t *testing.T, b *pgproto3.Backend) (write, flush uint64) {
	t.Helper()
	for {
		msg, err := b.Receive()
		if err != nil {
			t.Errorf("waiting for a status update: %v", err)
			return 0, 0
		}
		if cd, ok := msg.(*pgproto3.CopyData); ok && len(cd.Data) >= 17 && cd.Data[0] == 'r' {
			return binary.BigEndian.Uint64(cd.Data[1:]), binary.BigEndian.Uint64(cd.Data[9:])
		}
	}
}

func connect(t *testing.T, f *fakeWalsender) *pgconn.PgConn {
	t.Helper()
	conn, err := pgconn.Connect(t.Context(), fmt.Sprintf("postgres://u@%s/db?sslmode=disable&replication=true", f.ln.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func segmentBytes(seed byte) []byte {
	b := make([]byte, fakeSegSize)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

func TestReceiverProtocolEdges(t *testing.T) {
	seg := segmentBytes(7)
	const start = 0x100000 // segment 1 at 1 MiB
	var flushedMu sync.Mutex
	flushed := wal.LSN(start + 100)
	statuses := make(chan [2]uint64, 4)
	f := startFake(t, func(b *pgproto3.Backend, raw net.Conn) {
		status(t, b) // the status sent when streaming starts
		// A keepalive that asks for a reply at once.
		b.Send(&pgproto3.CopyData{Data: keepalive(start+uint64(len(seg)), true)})
		b.Flush()
		w, fl := status(t, b)
		statuses <- [2]uint64{w, fl}

		// The first half of the segment in one message, written to the
		// socket in two pieces with a pause between: a message split
		// across receives.
		msg, _ := (&pgproto3.CopyData{Data: xlogData(start, start+uint64(len(seg)), seg[:len(seg)/2])}).Encode(nil)
		raw.Write(msg[:1000])
		time.Sleep(20 * time.Millisecond) // let the client read the first piece alone
		raw.Write(msg[1000:])
		// The rest, then a keepalive asking for a reply: the status must
		// report the whole segment written, and flushed only what the
		// downstream says.
		b.Send(&pgproto3.CopyData{Data: xlogData(start+uint64(len(seg)/2), start+uint64(len(seg)), seg[len(seg)/2:])})
		b.Send(&pgproto3.CopyData{Data: xlogData(start+uint64(len(seg)), start+uint64(len(seg))+10, []byte("0123456789"))})
		b.Send(&pgproto3.CopyData{Data: keepalive(start+uint64(len(seg))+10, true)})
		b.Flush()
		// Earlier updates may come first (one is sent as soon as more WAL
		// is stored downstream); the reply covers everything sent.
		for w < start+uint64(len(seg))+10 {
			w, fl = status(t, b)
		}
		statuses <- [2]uint64{w, fl}

		// The timeline ends: CopyDone, then where the next one starts.
		b.Send(&pgproto3.CopyDone{})
		b.Flush()
		for {
			msg, err := b.Receive()
			if err != nil {
				t.Errorf("waiting for CopyDone: %v", err)
				return
			}
			if _, ok := msg.(*pgproto3.CopyDone); ok {
				break
			}
		}
		b.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("next_tli")}, {Name: []byte("next_tli_startpos")}}})
		b.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("2"), []byte("0/20000A")}})
		b.Send(&pgproto3.CommandComplete{CommandTag: []byte("START_STREAMING")})
		b.Send(&pgproto3.CommandComplete{CommandTag: []byte("START_STREAMING")})
		b.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		b.Flush()
	})
	conn := connect(t, f)
	dir := t.TempDir()
	var completed []string
	r := &wal.Receiver{
		Dir: dir, SegmentSize: fakeSegSize, StatusInterval: time.Hour,
		Flushed: func() wal.LSN { flushedMu.Lock(); defer flushedMu.Unlock(); return flushed },
		OnSegment: func(tli uint32, segNo uint64) {
			completed = append(completed, wal.SegmentName(tli, segNo, fakeSegSize))
		},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := r.Stream(ctx, conn, "s", 1, start)
	var end *wal.TimelineEnd
	if !errors.As(err, &end) {
		t.Fatalf("Stream = %v, want a *TimelineEnd", err)
	}
	if end.Next != 2 || end.Start != 0x20000A || end.Timeline != 1 || end.End != start+wal.LSN(len(seg))+10 {
		t.Errorf("TimelineEnd = %+v", end)
	}
	if err := <-f.done; err != nil {
		t.Fatal(err)
	}

	first, second := <-statuses, <-statuses
	// Before any WAL: nothing written past the start, and flush capped
	// at what was received, whatever downstream says.
	if first[0] != start || first[1] > start {
		t.Errorf("first status write=%X flush=%X, want write=%X and flush<=%X", first[0], first[1], start, start)
	}
	if second[0] != start+uint64(len(seg))+10 {
		t.Errorf("second status write=%X, want %X", second[0], start+uint64(len(seg))+10)
	}
	if wal.LSN(second[1]) != flushed {
		t.Errorf("second status flush=%X, want what downstream stored (%X), never what was received", second[1], flushed)
	}

	name := wal.SegmentName(1, 1, fakeSegSize)
	if len(completed) != 1 || completed[0] != name {
		t.Fatalf("completed segments = %v, want [%s]", completed, name)
	}
	got, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil || !bytes.Equal(got, seg) {
		t.Fatalf("spooled segment differs from what was sent (%v)", err)
	}
	partial, err := os.ReadFile(filepath.Join(dir, wal.SegmentName(1, 2, fakeSegSize)+wal.PartialSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if len(partial) != fakeSegSize || string(partial[:10]) != "0123456789" || partial[10] != 0 {
		t.Errorf("partial segment: %d bytes starting %q, want full size, the 10 bytes received, then zeros", len(partial), partial[:11])
	}
}

func TestReceiverRefusesAGap(t *testing.T) {
	f := startFake(t, func(b *pgproto3.Backend, raw net.Conn) {
		b.Send(&pgproto3.CopyData{Data: xlogData(0x100000+8192, 0x200000, []byte("later"))})
		b.Flush()
		b.Receive() // until the client hangs up
	})
	conn := connect(t, f)
	r := &wal.Receiver{Dir: t.TempDir(), SegmentSize: fakeSegSize, StatusInterval: time.Hour}
	err := r.Stream(t.Context(), conn, "s", 1, 0x100000)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("gap")) {
		t.Fatalf("Stream with a gap = %v, want an error naming the gap", err)
	}
}

func TestReceiverPauses(t *testing.T) {
	f := startFake(t, func(b *pgproto3.Backend, raw net.Conn) {
		b.Receive() // the status sent on pausing
	})
	conn := connect(t, f)
	r := &wal.Receiver{Dir: t.TempDir(), SegmentSize: fakeSegSize, StatusInterval: time.Hour, Pause: func() bool { return true }}
	if err := r.Stream(t.Context(), conn, "s", 1, 0x100000); !errors.Is(err, wal.ErrPaused) {
		t.Fatalf("Stream with a full spool = %v, want ErrPaused", err)
	}
}
