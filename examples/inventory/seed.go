package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"time"

	"github.com/casa-go/casa/cas"
)

// SeedLegacy creates n parts with attachments stored the pre-CAS way: each
// file under a fresh UUID key ("legacy/<uuid>" or a bare "<uuid>"), which
// the startup migration then moves to CAS keys. Every part gets a photo
// (its cover), a datasheet PDF shared byte for byte by all parts (the
// migration stores it once) and a URL attachment.
func SeedLegacy(ctx context.Context, db *appDB, b cas.Backend, n int) error {
	components := [...]string{
		"NE555 timer, DIP-8",
		"ATmega328P microcontroller, TQFP-32",
		"LM7805 5 V regulator, TO-220",
		"2N2222 NPN transistor, TO-92",
		"10 kOhm resistor, 0603",
		"ESP32-WROOM-32 module",
	}
	datasheet := seedPDF()
	for i := range n {
		name := components[i%len(components)]
		photo, err := seedPhoto(i)
		if err != nil {
			return err
		}
		files := []struct {
			title, filename, contentType string
			data                         []byte
		}{
			{"Photo", fmt.Sprintf("photo-%d.jpg", i+1), "image/jpeg", photo},
			{"Datasheet", "datasheet.pdf", "application/pdf", datasheet},
		}
		// Objects first, rows second: a row never points at a missing object.
		keys := make([]string, len(files))
		for j, f := range files {
			keys[j] = newUUID()
			if (i+j)%2 == 0 {
				keys[j] = "legacy/" + keys[j]
			}
			err := b.Put(ctx, keys[j], bytes.NewReader(f.data), int64(len(f.data)), cas.PutOptions{ContentType: f.contentType})
			if err != nil {
				return fmt.Errorf("seed: store %s: %w", keys[j], err)
			}
		}
		if err := seedRows(ctx, db, fmt.Sprintf("%s (legacy #%d)", name, i+1), func(tx *appTx, partKey string) (int64, error) {
			var cover int64
			for j, f := range files {
				at := attachment{
					PartKey:     partKey,
					Title:       f.title,
					Filename:    sql.NullString{String: f.filename, Valid: true},
					ContentType: sql.NullString{String: f.contentType, Valid: true},
					FileSize:    sql.NullInt64{Int64: int64(len(f.data)), Valid: true},
					StorageKey:  sql.NullString{String: keys[j], Valid: true},
				}
				if err := insertAttachment(ctx, tx, &at); err != nil {
					return 0, err
				}
				if j == 0 {
					cover = at.ID
				}
			}
			at := attachment{PartKey: partKey, Title: "Distributor page",
				URL: sql.NullString{String: "https://example.com/parts/" + partKey, Valid: true}}
			return cover, insertAttachment(ctx, tx, &at)
		}); err != nil {
			return err
		}
	}
	return nil
}

// seedRows inserts a part, its attachments (by add) and its cover in one
// transaction.
func seedRows(ctx context.Context, db *appDB, description string, add func(*appTx, string) (int64, error)) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	p, err := insertPart(ctx, tx, description, time.Now())
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	cover, err := add(tx, p.Key)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE parts SET cover_attachment_id = ? WHERE "key" = ?`, cover, p.Key); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

// newUUID returns a random (version 4) UUID, the kind of key the pre-CAS
// app stored files under.
func newUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// seedPhoto draws a 320x240 JPEG, a different gradient for each i, so that
// every seeded photo is a distinct blob.
func seedPhoto(i int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for y := range 240 {
		for x := range 320 {
			img.Set(x, y, color.RGBA{uint8(x * 255 / 320), uint8(y * 255 / 240), uint8(i * 47), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		return nil, fmt.Errorf("seed: photo: %w", err)
	}
	return buf.Bytes(), nil
}

// seedPDF returns a minimal one-page PDF.
func seedPDF() []byte {
	return []byte("%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n" +
		"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n" +
		"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n" +
		"trailer<</Root 1 0 R>>\n%%EOF\n")
}
