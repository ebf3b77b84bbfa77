//! Tools live here.
