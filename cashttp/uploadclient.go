package cashttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/casa-go/casa/cas"
)

// UploadClient is a client of the upload protocol (UploadHandler): a
// program that has hashed its files asks which ones the server lacks
// (Missing) and uploads only those (Put), so known bytes never travel.
//
//	c := &cashttp.UploadClient{BaseURL: "https://app.example/api/uploads"}
//	missing, err := c.Missing(ctx, hashes)
//	for _, h := range missing { _, err = c.Put(ctx, h, file(h), size(h)) }
type UploadClient struct {
	// BaseURL is the URL of the upload prefix, without a trailing slash.
	BaseURL string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	// Header is added to every request: the application's
	// authorization, for instance.
	Header http.Header
	// Batch is the most hashes sent in one batch request; zero means
	// DefaultMaxBatch. Missing splits longer lists.
	Batch int
}

// Missing returns the hashes of hs that the server does not store, in
// order (POST <BaseURL>/missing, in batches).
func (c *UploadClient) Missing(ctx context.Context, hs []cas.Hash) ([]cas.Hash, error) {
	batch := c.Batch
	if batch <= 0 {
		batch = DefaultMaxBatch
	}
	out := []cas.Hash{}
	for start := 0; start < len(hs); start += batch {
		body, err := json.Marshal(struct {
			Hashes []cas.Hash `json:"hashes"`
		}{hs[start:min(start+batch, len(hs))]})
		if err != nil {
			return nil, err
		}
		resp, err := c.do(ctx, http.MethodPost, MissingPath, bytes.NewReader(body), int64(len(body)), "application/json")
		if err != nil {
			return nil, err
		}
		var res missingResult
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("cashttp: batch answer: %w", err)
		}
		out = append(out, res.Missing...)
	}
	return out, nil
}

// Exists reports whether the server stores h (HEAD <BaseURL>/<hash>).
func (c *UploadClient) Exists(ctx context.Context, h cas.Hash) (bool, error) {
	resp, err := c.send(ctx, http.MethodHead, h.String(), nil, 0, "")
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("cashttp: HEAD %s: %s", h, resp.Status)
}

// Put uploads size bytes from body as the blob h (PUT <BaseURL>/<hash>)
// and reports whether the server stored them (201) rather than had them
// already (200). A body that does not hash to h is refused by the server
// (an error naming 400) and nothing is stored.
func (c *UploadClient) Put(ctx context.Context, h cas.Hash, body io.Reader, size int64) (stored bool, err error) {
	resp, err := c.do(ctx, http.MethodPut, h.String(), body, size, "application/octet-stream")
	if err != nil {
		return false, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusCreated, nil
}

// do sends a request and returns a 2xx response, or an error with the
// status and the server's short reason.
func (c *UploadClient) do(ctx context.Context, method, seg string, body io.Reader, size int64, ct string) (*http.Response, error) {
	resp, err := c.send(ctx, method, seg, body, size, ct)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("cashttp: %s %s: %s: %s", method, seg, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

func (c *UploadClient) send(ctx context.Context, method, seg string, body io.Reader, size int64, ct string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+"/"+seg, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", ct)
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	return client.Do(req)
}
