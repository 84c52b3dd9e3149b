package clean

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Column builders that write Arrow's buffer layout directly. Arrow's own
// builders check capacity and validity per value; these append to Go slices
// reused from batch to batch, and hand the slices to Arrow without copying.
// A batch made from them is valid until the builder is appended to again.

type strCol struct {
	offsets []int32
	data    []byte
	valid   []byte // validity bitmap; nil while every value is present
	nulls   int
}

func (c *strCol) reset() {
	c.offsets = append(c.offsets[:0], 0)
	c.data = c.data[:0]
	c.valid = c.valid[:0]
	c.nulls = 0
}

func (c *strCol) appendBytes(b []byte) {
	c.data = append(c.data, b...)
	c.offsets = append(c.offsets, int32(len(c.data)))
	c.markValid()
}

func (c *strCol) appendString(s string) {
	c.data = append(c.data, s...)
	c.offsets = append(c.offsets, int32(len(c.data)))
	c.markValid()
}

func (c *strCol) appendNull() {
	n := len(c.offsets) - 1
	c.offsets = append(c.offsets, int32(len(c.data)))
	c.null(n)
}

func (c *strCol) markValid() {
	if c.nulls > 0 {
		setValid(&c.valid, len(c.offsets)-2)
	}
}

// null records value i as null, materialising the bitmap on the first null.
func (c *strCol) null(i int) {
	if c.nulls == 0 {
		c.valid = c.valid[:0]
		for j := range i {
			setValid(&c.valid, j)
		}
	}
	growBitmap(&c.valid, i)
	c.nulls++
}

func (c *strCol) len() int { return len(c.offsets) - 1 }

func (c *strCol) array() arrow.Array {
	n := c.len()
	d := array.NewData(arrow.BinaryTypes.String, n,
		[]*memory.Buffer{c.validity(), memory.NewBufferBytes(int32Bytes(c.offsets)), memory.NewBufferBytes(c.data)}, nil, c.nulls, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

func (c *strCol) validity() *memory.Buffer {
	if c.nulls == 0 {
		return nil
	}
	return memory.NewBufferBytes(c.valid)
}

func setValid(bm *[]byte, i int) {
	growBitmap(bm, i)
	(*bm)[i/8] |= 1 << (i % 8)
}

func growBitmap(bm *[]byte, i int) {
	for len(*bm) <= i/8 {
		*bm = append(*bm, 0)
	}
}

// fixedCol holds 8-byte values: float64, int64 or timestamps.
type fixedCol[T float64 | int64 | arrow.Timestamp] struct {
	vals  []T
	valid []byte
	nulls int
}

func (c *fixedCol[T]) reset() {
	c.vals, c.valid, c.nulls = c.vals[:0], c.valid[:0], 0
}

func (c *fixedCol[T]) append(v T) {
	c.vals = append(c.vals, v)
	if c.nulls > 0 {
		setValid(&c.valid, len(c.vals)-1)
	}
}

func (c *fixedCol[T]) appendNull() {
	i := len(c.vals)
	c.vals = append(c.vals, 0)
	if c.nulls == 0 {
		c.valid = c.valid[:0]
		for j := range i {
			setValid(&c.valid, j)
		}
	}
	growBitmap(&c.valid, i)
	c.nulls++
}

func (c *fixedCol[T]) array(dt arrow.DataType) arrow.Array {
	var valid *memory.Buffer
	if c.nulls > 0 {
		valid = memory.NewBufferBytes(c.valid)
	}
	d := array.NewData(dt, len(c.vals), []*memory.Buffer{valid, memory.NewBufferBytes(fixedBytes(c.vals))}, nil, c.nulls, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

func int32Bytes(s []int32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*4)
}

func fixedBytes[T float64 | int64 | arrow.Timestamp](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*8)
}
