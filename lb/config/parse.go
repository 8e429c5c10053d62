package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxDocumentBytes bounds a document read by Parse or a FileStore.
const MaxDocumentBytes = 16 << 20

// Parse decodes a document strictly: unknown fields, mistyped values,
// trailing data and documents over MaxDocumentBytes are errors. It does not
// apply defaults or validate; Load does all three.
func Parse(data []byte) (*Document, error) {
	if len(data) > MaxDocumentBytes {
		return nil, fmt.Errorf("config: document of %d bytes is over the limit of %d", len(data), MaxDocumentBytes)
	}
	d := &Document{}
	if err := DecodeStrict(bytes.NewReader(data), d); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return d, nil
}

// Load parses data, applies the defaults and validates the result.
func Load(data []byte) (*Document, error) {
	d, err := Parse(data)
	if err != nil {
		return nil, err
	}
	d.ApplyDefaults()
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// DecodeStrict decodes one JSON value from r into v, refusing unknown
// fields and anything after the value. The API decodes request bodies
// with it.
func DecodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

// Marshal encodes d as the indented JSON a file holds.
func (d *Document) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return append(b, '\n'), nil
}

// Clone returns a deep copy of d.
func (d *Document) Clone() *Document {
	b, err := json.Marshal(d)
	if err != nil {
		panic(fmt.Sprintf("config: a document does not encode: %v", err))
	}
	c := &Document{}
	if err := json.Unmarshal(b, c); err != nil {
		panic(fmt.Sprintf("config: a document does not decode: %v", err))
	}
	return c
}
