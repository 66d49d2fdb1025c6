// Package thumbnail makes decode-safe JPEG thumbnails of stored images, with
// caching and request coalescing.
package thumbnail
