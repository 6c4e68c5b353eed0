// The bytes ratings exchanges with its database per connection (apps/service.ts), shared with the
// mesh test, which checks the TCP metrics' byte counts against them: one Redis GET of an unset
// key (24 bytes out) and its nil reply (5 bytes back), the same every time.
export const REDIS_GET_STARS = "*2\r\n$3\r\nGET\r\n$5\r\nstars\r\n";
export const REDIS_NIL = "$-1\r\n";
