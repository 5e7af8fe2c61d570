package controller

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// BenchmarkArchiveCompression measures what zstd (klauspost/compress, its fastest and default
// levels) would cost a backup, against the plain copy the store makes: MB/s of input through one
// core, and the size left, for random bytes (media, compressed dumps) and for a text dump
// (SQL). The engine's archive endpoint delivers about 160 MB/s on these machines
// (docs/benchmarks.md), so an encoder slower than that would slow every backup.
//
//	go test ./controller -run '^$' -bench ArchiveCompression
func BenchmarkArchiveCompression(b *testing.B) {
	const size = 64 << 20
	random := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	var sql bytes.Buffer
	for i := 0; sql.Len() < size; i++ {
		fmt.Fprintf(&sql, "INSERT INTO posts (id, author, title, body) VALUES (%d, 'user%d', 'Title %d', 'Lorem ipsum dolor sit amet %d, consectetur adipiscing elit');\n", i, i%97, i, r.IntN(1e6))
	}
	for _, data := range []struct {
		name string
		b    []byte
	}{{"random", random}, {"sql", sql.Bytes()[:size]}} {
		b.Run(data.name+"/plain", func(b *testing.B) {
			b.SetBytes(size)
			for range b.N {
				_, _ = io.Copy(io.Discard, bytes.NewReader(data.b))
			}
		})
		for _, level := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
			b.Run(fmt.Sprintf("%s/zstd-%s", data.name, level), func(b *testing.B) {
				b.SetBytes(size)
				var out countWriter
				for range b.N {
					out = 0
					enc, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1))
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(enc, bytes.NewReader(data.b)); err != nil {
						b.Fatal(err)
					}
					if err := enc.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(out)/size*100, "%size")
			})
		}
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
