//! ProxyPass-style path mapping and proxy header handling (work in progress).
