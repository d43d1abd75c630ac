//! `hcexpr` conditions (the ProxyHCExpr equivalent): work in progress.
