//! Prints the order in which a balancer picks its members, for given load factors.
//!
//! ```text
//! cargo run --release --example schedule -- 1 2 3
//! cargo run --release --example schedule -- --lbmethod bybusyness --picks 12 1 2.25
//! cargo run --release --example schedule -- --disable B 25 25 25 25
//! ```
//!
//! Members are named A, B, C … in the order given. The output is the pick order (as
//! Apache 2.4's mod_proxy_balancer would make it), then each member's count and share.

use std::io::Write;
use std::time::Instant;

use examples::Report;
use proxy_balancer::{BalancerParams, BalancerStore, MemberParams, PickRequest, StatusFlags};

const USAGE: &str =
    "usage: schedule [--lbmethod NAME] [--picks N] [--disable LETTER]... LOADFACTOR...";

fn main() -> Result<(), Report> {
    let mut args = std::env::args().skip(1);
    let mut params = BalancerParams::new("schedule");
    let mut picks: Option<usize> = None;
    let mut disabled: Vec<char> = Vec::new();
    let mut factors: Vec<String> = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--lbmethod" => params.set("lbmethod", &args.next().ok_or(USAGE)?)?,
            "--picks" => picks = Some(args.next().ok_or(USAGE)?.parse()?),
            "--disable" => {
                let letter = args.next().ok_or(USAGE)?;
                disabled.extend(letter.chars().map(|c| c.to_ascii_uppercase()));
            }
            "-h" | "--help" => {
                writeln!(std::io::stdout(), "{USAGE}")?;
                return Ok(());
            }
            _ => factors.push(arg),
        }
    }
    if factors.is_empty() {
        factors = vec!["1".into(), "2".into(), "3".into()];
    }
    if factors.len() > 26 {
        return Err("at most 26 members (A to Z)".into());
    }

    let names: Vec<char> = (b'A'..=b'Z').map(char::from).take(factors.len()).collect();
    let mut members = Vec::new();
    for (name, lf) in names.iter().zip(&factors) {
        let mut m = MemberParams::new(&format!("http://member-{}", name.to_ascii_lowercase()))?;
        m.set("loadfactor", lf)?;
        if disabled.contains(name) {
            m.status = StatusFlags::DISABLED;
        }
        members.push(m);
    }
    // One full byrequests cycle of the usable members by default.
    let total: u64 = members
        .iter()
        .filter(|m| m.status.is_usable())
        .map(|m| u64::from(m.load_factor.lbf()))
        .sum();
    let gcd = members
        .iter()
        .filter(|m| m.status.is_usable())
        .fold(0, |g, m| gcd(g, u64::from(m.load_factor.lbf())));
    let picks = picks.unwrap_or_else(|| {
        usize::try_from(total / gcd.max(1))
            .unwrap_or(usize::MAX)
            .min(10_000)
    });

    // The pick never waits on time here: one instant serves the whole schedule.
    #[expect(
        clippy::disallowed_methods,
        reason = "a program's own clock, read once"
    )]
    let now = Instant::now();
    let store = BalancerStore::new(params, members, now)?;
    let snapshot = store.snapshot();
    let mut order = String::with_capacity(picks * 2);
    let mut counts = vec![0u64; names.len()];
    for _ in 0..picks {
        let picked = store.pick(&PickRequest::new(), now)?;
        let index = snapshot
            .members()
            .iter()
            .position(|m| m.id() == picked.member().id())
            .ok_or("picked a member that is not in the snapshot")?;
        counts[index] += 1;
        if !order.is_empty() {
            order.push(' ');
        }
        order.push(names[index]);
    }

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "lbmethod {} over {picks} picks:",
        snapshot.params().lb_method
    )?;
    writeln!(out, "{order}")?;
    for ((name, member), count) in names.iter().zip(snapshot.members()).zip(&counts) {
        let share = if picks == 0 {
            0.0
        } else {
            100.0 * *count as f64 / picks as f64
        };
        writeln!(
            out,
            "{name}  loadfactor {:>6}  {:<14} {count:>6} picks  {share:5.1}%",
            member.params().load_factor.to_string(),
            member.flags().label().to_string(),
        )?;
    }
    Ok(())
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
