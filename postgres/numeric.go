package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"math/bits"

	"github.com/kalla-dev/kalla"
)

// A binary numeric is a header of four int16 (ndigits, weight, sign,
// dscale) and ndigits base-10000 digits, the first worth 10000^weight.
const (
	numericPos    = 0x0000
	numericNeg    = 0x4000
	numericNaN    = 0xC000
	numericPInf   = 0xD000
	numericNInf   = 0xF000
	numericHeader = 8
)

// uint128 is an unsigned 128-bit integer: 38 decimal digits fit.
type uint128 struct{ hi, lo uint64 }

// pow10x128 holds 10^0 .. 10^38.
var pow10x128 = func() (t [kalla.MaxDecimalPrecision + 1]uint128) {
	t[0] = uint128{0, 1}
	for i := 1; i < len(t); i++ {
		t[i], _ = t[i-1].mul(10)
	}
	return t
}()

var pow10x64 = [...]uint64{1, 10, 100, 1000, 10000}

// mul returns x*m and whether it overflowed.
func (x uint128) mul(m uint64) (uint128, bool) {
	hh, hl := bits.Mul64(x.hi, m)
	lh, ll := bits.Mul64(x.lo, m)
	hi, carry := bits.Add64(hl, lh, 0)
	return uint128{hi, ll}, hh != 0 || carry != 0
}

// add returns x+d and whether it overflowed.
func (x uint128) add(d uint64) (uint128, bool) {
	lo, c := bits.Add64(x.lo, d, 0)
	hi, c2 := bits.Add64(x.hi, 0, c)
	return uint128{hi, lo}, c2 != 0
}

// less reports whether x < y.
func (x uint128) less(y uint128) bool {
	return x.hi < y.hi || x.hi == y.hi && x.lo < y.lo
}

// mulPow10 returns x*10^k and whether it overflowed 128 bits.
func (x uint128) mulPow10(k int) (uint128, bool) {
	for k > 0 {
		n := min(k, 19)
		var over bool
		if x, over = x.mul(pow10x128[n].lo); over {
			return x, true
		}
		k -= n
	}
	return x, false
}

var errNumericRange = errors.New("out of range")

// decodeNumeric returns the binary numeric b as an unscaled integer at
// scale (its value times 10^scale), exactly: a value with more decimal places
// than scale, or with 10^precision or more once scaled, is an error rather
// than rounded. NaN and infinities are errors too: DECIMAL has neither.
func decodeNumeric(b []byte, precision, scale int) (neg bool, v uint128, err error) {
	if len(b) < numericHeader {
		return false, v, fmt.Errorf("%d-byte numeric", len(b))
	}
	ndigits := int(binary.BigEndian.Uint16(b))
	weight := int(int16(binary.BigEndian.Uint16(b[2:])))
	switch sign := binary.BigEndian.Uint16(b[4:]); sign {
	case numericPos:
	case numericNeg:
		neg = true
	case numericNaN:
		return false, v, errors.New("NaN has no DECIMAL value")
	case numericPInf, numericNInf:
		return false, v, errors.New("infinity has no DECIMAL value")
	default:
		return false, v, fmt.Errorf("numeric sign %#x", sign)
	}
	if len(b) != numericHeader+2*ndigits {
		return false, v, fmt.Errorf("numeric of %d digits in %d bytes", ndigits, len(b))
	}
	// Horner's rule over the digits, v counting units of 10^cur. Digit i is
	// worth 10^e of the result, e = 4*(weight-i)+scale; a digit below the
	// units (e < 0) may only hold zeros there.
	cur := 0
	for i := 0; i < ndigits; i++ {
		d := uint64(binary.BigEndian.Uint16(b[numericHeader+2*i:]))
		e := 4*(weight-i) + scale
		if e < 0 {
			if e <= -4 {
				if d != 0 {
					return false, v, fmt.Errorf("has more than %d decimal places", scale)
				}
				continue
			}
			p := pow10x64[-e]
			if d%p != 0 {
				return false, v, fmt.Errorf("has more than %d decimal places", scale)
			}
			d /= p
			e = 0
		}
		if i > 0 {
			var over bool
			if v, over = v.mulPow10(cur - e); over {
				return false, v, errNumericRange
			}
		}
		var over bool
		if v, over = v.add(d); over {
			return false, v, errNumericRange
		}
		cur = e
	}
	if ndigits > 0 {
		var over bool
		if v, over = v.mulPow10(cur); over {
			return false, v, errNumericRange
		}
	}
	if precision < len(pow10x128) && !v.less(pow10x128[precision]) {
		return false, v, errNumericRange
	}
	return neg, v, nil
}

// numericInt64 is a decoded numeric of at most 18 digits as an int64.
func numericInt64(neg bool, v uint128) int64 {
	n := int64(v.lo) // v < 10^18
	if neg {
		n = -n
	}
	return n
}

// numericBig is a decoded numeric as a *big.Int, for DECIMAL wider than 18.
func numericBig(neg bool, v uint128) *big.Int {
	z := new(big.Int)
	if v.hi == 0 {
		z.SetUint64(v.lo)
	} else if bits.UintSize == 64 {
		z.SetBits([]big.Word{big.Word(v.lo), big.Word(v.hi)})
	} else {
		z.SetUint64(v.hi)
		z.Lsh(z, 64)
		z.Or(z, new(big.Int).SetUint64(v.lo))
	}
	if neg {
		z.Neg(z)
	}
	return z
}
