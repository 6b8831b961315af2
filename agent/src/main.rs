//! `aloft-agent`: the edge daemon's command line.

fn main() {}
