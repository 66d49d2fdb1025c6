package main

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil/imagetest"
)

func TestPageShowsPartsAndAttachments(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{})
	status, _, body := ta.get("/")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), "No parts yet")

	key := ta.createPart(`<script>alert("x")</script> NE555`)
	img := ta.uploadOK(key, "Top", "top.png", "image/png", imagetest.PNG(300, 300))
	pdf := ta.uploadOK(key, "Datasheet", "d.pdf", "application/pdf", imagetest.PDF())
	ta.doJSON("PUT", "/api/parts/"+key+"/cover", map[string]any{"attachment_id": img.ID}, http.StatusOK, nil)

	status, hdr, body := ta.get("/")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "text/html; charset=utf-8", hdr.Get("Content-Type"))
	page := string(body)
	require.NotContains(t, page, `<script>alert`, "descriptions are escaped")
	require.Contains(t, page, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; NE555`)
	require.Contains(t, page, `id="part-`+key+`"`)
	// The same URLs as the API, HTML-escaped in attributes.
	require.Contains(t, page, `class="cover-thumb" src="`+html.EscapeString(*img.ThumbnailURL)+`"`)
	require.Contains(t, page, `class="thumb" src="`+html.EscapeString(*img.ThumbnailURL)+`"`)
	require.Contains(t, page, `href="`+html.EscapeString(*img.DownloadURL)+`"`)
	require.Contains(t, page, `href="`+html.EscapeString(*pdf.DownloadURL)+`"`)
	require.Contains(t, page, `action="/parts/`+key+`/attachments" enctype="multipart/form-data"`)
}

func TestPageForms(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{})
	client := *ta.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	resp, err := client.PostForm(ta.srv.URL+"/parts", url.Values{"description": {"LM7805"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	var parts []partJSON
	ta.doJSON("GET", "/api/parts", nil, http.StatusOK, &parts)
	require.Len(t, parts, 1)
	require.Equal(t, "LM7805", parts[0].Description)
	require.Equal(t, "/#part-"+parts[0].Key, resp.Header.Get("Location"))

	body, ct := multipartBody(t, "front", "front.jpg", "image/jpeg", imagetest.JPEG(50, 50))
	resp, err = client.Post(ta.srv.URL+"/parts/"+parts[0].Key+"/attachments", ct, body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Len(t, ta.attachments(parts[0].Key), 1)

	// Bad form input: a plain-text error, nothing written.
	resp, err = client.PostForm(ta.srv.URL+"/parts", url.Values{"description": {"  "}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	body, ct = multipartBody(t, "x", "x.jpg", "image/jpeg", imagetest.JPEG(50, 50))
	resp, err = client.Post(ta.srv.URL+"/parts/nosuchpart/attachments", ct, body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	// A cross-site form post is refused.
	req, err := http.NewRequestWithContext(t.Context(), "POST", ta.srv.URL+"/parts", strings.NewReader("description=evil"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	require.Equal(t, 1, ta.rowCount("parts"))
	require.Equal(t, 1, ta.rowCount("attachments"))
}

var (
	partSectionRE = regexp.MustCompile(`data-part-key="([a-z2-7]+)"`)
	nextPageRE    = regexp.MustCompile(`<a id="next-page" rel="next" href="([^"]+)">`)
)

// TestPagePaginated: GET / shows a page of parts at a time, in the API's
// order, with a next-page link while more remain; every part comes once,
// with its own attachments.
func TestPagePaginated(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{})
	want := ta.insertParts(sameTimes(7))
	// An attachment on a part of the second page shows there only.
	pdf := ta.uploadOK(want[3], "Datasheet", "d.pdf", "application/pdf", imagetest.PDF())

	var got []string
	pages := 0
	for u := "/?limit=3"; u != ""; pages++ {
		require.Less(t, pages, 10, "the pages do not end")
		status, _, b := ta.get(u)
		require.Equal(t, http.StatusOK, status, "%s: %s", u, b)
		page := string(b)
		var keys []string
		for _, m := range partSectionRE.FindAllStringSubmatch(page, -1) {
			keys = append(keys, m[1])
		}
		require.LessOrEqual(t, len(keys), 3)
		require.Equal(t, slices.Contains(keys, want[3]), strings.Contains(page, html.EscapeString(*pdf.DownloadURL)), "page %d", pages)
		got = append(got, keys...)
		u = ""
		if m := nextPageRE.FindStringSubmatch(page); m != nil {
			u = html.UnescapeString(m[1])
			require.True(t, strings.HasPrefix(u, "/?"), u)
		}
	}
	require.Equal(t, 3, pages)
	require.Equal(t, want, got)

	// The default page holds 100 parts; a bad cursor or limit is a 400.
	status, _, b := ta.get("/")
	require.Equal(t, http.StatusOK, status)
	require.Len(t, partSectionRE.FindAllString(string(b), -1), len(want))
	require.NotRegexp(t, nextPageRE, string(b))
	for _, q := range []string{"limit=0", "limit=1001", "after=nope"} {
		status, _, _ := ta.get("/?" + q)
		require.Equal(t, http.StatusBadRequest, status, q)
	}
}
