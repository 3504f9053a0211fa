package main

import (
	"bufio"
	"io"
	"strconv"
	"time"
)

// rowWriter writes CSV rows for COPY ... FROM STDIN (FORMAT csv). A nil
// *rowWriter discards everything, so one generator run can feed either
// table. Text values are written unquoted: the generators' texts hold no
// commas, quotes or newlines.
type rowWriter struct {
	w      *bufio.Writer
	line   []byte
	fields int // in line
	rows   int64
	err    error
}

func newRowWriter(w io.Writer) *rowWriter {
	return &rowWriter{w: bufio.NewWriterSize(w, 1<<20)}
}

func (r *rowWriter) sep() {
	if r.fields > 0 {
		r.line = append(r.line, ',')
	}
	r.fields++
}

// Int writes an integer column.
func (r *rowWriter) Int(v int64) *rowWriter {
	if r != nil {
		r.sep()
		r.line = strconv.AppendInt(r.line, v, 10)
	}
	return r
}

// IntOrNull writes v when ok, else NULL (an empty unquoted CSV field).
func (r *rowWriter) IntOrNull(v int64, ok bool) *rowWriter {
	if r != nil {
		r.sep()
		if ok {
			r.line = strconv.AppendInt(r.line, v, 10)
		}
	}
	return r
}

// Money writes cents as a decimal with two places.
func (r *rowWriter) Money(cents int64) *rowWriter {
	if r != nil {
		r.sep()
		if cents < 0 {
			r.line = append(r.line, '-')
			cents = -cents
		}
		r.line = strconv.AppendInt(r.line, cents/100, 10)
		r.line = append(r.line, '.', byte('0'+cents%100/10), byte('0'+cents%10))
	}
	return r
}

// Date writes the day'th day after the data's first day.
func (r *rowWriter) Date(day int64) *rowWriter {
	if r != nil {
		r.sep()
		r.line = append(r.line, dayString(day)...)
	}
	return r
}

// Time writes a UTC timestamp sec seconds into the day'th day.
func (r *rowWriter) Time(day, sec int64) *rowWriter {
	if r != nil {
		r.sep()
		r.line = append(r.line, dayString(day)...)
		r.line = append(r.line, ' ')
		for _, v := range []int64{sec / 3600, sec / 60 % 60, sec % 60} {
			r.line = append(r.line, byte('0'+v/10), byte('0'+v%10), ':')
		}
		r.line = append(r.line[:len(r.line)-1], "+00"...)
	}
	return r
}

// Text writes a text column as is.
func (r *rowWriter) Text(s string) *rowWriter {
	if r != nil {
		r.sep()
		r.line = append(r.line, s...)
	}
	return r
}

// End finishes the row.
func (r *rowWriter) End() {
	if r == nil {
		return
	}
	r.line = append(r.line, '\n')
	if r.err == nil {
		_, r.err = r.w.Write(r.line)
	}
	r.line, r.fields = r.line[:0], 0
	r.rows++
}

// Flush writes what is buffered and returns the first write error.
func (r *rowWriter) Flush() error {
	if r.err == nil {
		r.err = r.w.Flush()
	}
	return r.err
}

var firstDay = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// days caches the date strings of the first two years.
var days = func() []string {
	s := make([]string, 2*366)
	for i := range s {
		s[i] = firstDay.AddDate(0, 0, i).Format(time.DateOnly)
	}
	return s
}()

func dayString(day int64) string {
	if day >= 0 && day < int64(len(days)) {
		return days[day]
	}
	return firstDay.AddDate(0, 0, int(day)).Format(time.DateOnly)
}
