// Package httpx holds HTTP facts shared by every stage that calls out (the
// providers' clients in deliver, the webhook stage), so neither imports the
// other.
package httpx
