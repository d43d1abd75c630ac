//! Which directives apply in which server: Apache's merge of the main server into each
//! `<VirtualHost>`.

use crate::ast::{
    BalancerConfig, Config, CookieRewrite, HeaderDirective, HostSettings, LocationConfig,
    ProxyPassConfig, ProxyPassReverseConfig,
};

impl Config {
    /// The settings in force in a server (`None`: the main server): each one the virtual
    /// host's own where it gives it, else the main server's (Apache's server merge).
    /// `server_aliases` are the virtual host's only.
    ///
    /// ```
    /// let config = proxy_balancer_apache_config::parse(
    ///     "ProxyPreserveHost On\nProxyAddHeaders Off\n\
    ///      <VirtualHost *:80>\n  ServerName b.example\n  ProxyAddHeaders On\n</VirtualHost>\n",
    /// )?;
    /// let b = config.host_settings(Some(0));
    /// assert_eq!(b.proxy_preserve_host, Some(true), "inherited");
    /// assert_eq!(b.proxy_add_headers, Some(true), "its own");
    /// # Ok::<(), proxy_balancer_apache_config::ParseErrors>(())
    /// ```
    #[must_use]
    pub fn host_settings(&self, vhost: Option<usize>) -> HostSettings {
        let main = &self.server;
        let Some(own) = vhost.and_then(|i| self.virtual_hosts.get(i)) else {
            return main.clone();
        };
        let own = &own.settings;
        HostSettings {
            server_name: own.server_name.clone().or_else(|| main.server_name.clone()),
            server_aliases: own.server_aliases.clone(),
            proxy_preserve_host: own.proxy_preserve_host.or(main.proxy_preserve_host),
            proxy_add_headers: own.proxy_add_headers.or(main.proxy_add_headers),
            allow_encoded_slashes: own.allow_encoded_slashes.or(main.allow_encoded_slashes),
            proxy_pass_inherit: own.proxy_pass_inherit.or(main.proxy_pass_inherit),
            balancer_inherit: own.balancer_inherit.or(main.balancer_inherit),
            proxy_via: own.proxy_via.or(main.proxy_via),
            proxy_error_override: own
                .proxy_error_override
                .clone()
                .or_else(|| main.proxy_error_override.clone()),
            proxy_bad_header: own.proxy_bad_header.or(main.proxy_bad_header),
            proxy_100_continue: own.proxy_100_continue.or(main.proxy_100_continue),
            proxy_io_buffer_size: own.proxy_io_buffer_size.or(main.proxy_io_buffer_size),
            ssl: crate::ssl_server::SslServer::merged(&own.ssl, &main.ssl),
            ssl_proxy: crate::ssl::SslProxySettings::merged(&own.ssl_proxy, &main.ssl_proxy),
        }
    }

    /// Whether a virtual host gets the main server's `ProxyPass` lines
    /// (`ProxyPassInherit`, On by default). The main server itself: `true`.
    ///
    /// # Apache
    ///
    /// As Apache's manual documents `ProxyPassInherit`. Apache 2.4.71 itself does not
    /// follow it: its server merge appends the main server's `ProxyPass` lines whatever
    /// `ProxyPassInherit` says (`ProxyPassInherit Off` in a `<VirtualHost>`, and a main
    /// server `ProxyPass /a/ …`: a request for `/a/` to that virtual host was still proxied,
    /// on loopback); there the directive only changes which balancers and workers are
    /// inherited ([`Config::inherits_balancers`]).
    #[must_use]
    pub fn inherits_proxy_passes(&self, vhost: Option<usize>) -> bool {
        vhost.is_none() || self.host_settings(vhost).proxy_pass_inherit != Some(false)
    }

    /// Whether a virtual host sees the main server's balancers: Apache merges them in when
    /// `BalancerInherit` or `ProxyPassInherit` is On (both are by default). The main server
    /// itself: `true`.
    #[must_use]
    pub fn inherits_balancers(&self, vhost: Option<usize>) -> bool {
        let settings = self.host_settings(vhost);
        vhost.is_none()
            || settings.balancer_inherit != Some(false)
            || settings.proxy_pass_inherit != Some(false)
    }

    /// The balancer a `balancer://name` names in a server: the main server's when the
    /// server inherits balancers ([`Config::inherits_balancers`]) and the main server has
    /// one of that name, else the server's own. `name` is lower-case (as
    /// [`ProxyTarget::Balancer`](crate::ProxyTarget) holds it).
    ///
    /// # Apache
    ///
    /// mod_proxy's server merge puts the main server's balancers before the virtual
    /// host's and the lookup takes the first of the name: a virtual host's
    /// `<Proxy "balancer://app">` is never used while it inherits a main-server
    /// `balancer://app` (seen on Apache 2.4.71: its requests and its balancer-manager go to
    /// the main server's members).
    #[must_use]
    pub fn balancer_in(&self, vhost: Option<usize>, name: &str) -> Option<&BalancerConfig> {
        let main = (vhost.is_none() || self.inherits_balancers(vhost))
            .then(|| {
                self.balancers
                    .iter()
                    .find(|b| b.context.vhost.is_none() && b.name == name)
            })
            .flatten();
        main.or_else(|| {
            self.balancers
                .iter()
                .find(|b| b.context.vhost == vhost && b.name == name)
        })
    }

    /// The `ProxyPass` lines written outside `<Location>` that apply in a server, in the
    /// order they are tried (the first match wins): the main server's when inherited
    /// ([`Config::inherits_proxy_passes`]), then the virtual host's own, as Apache's merge
    /// appends them.
    pub fn server_proxy_passes(
        &self,
        vhost: Option<usize>,
    ) -> impl Iterator<Item = &ProxyPassConfig> + '_ {
        let inherit = vhost.is_some() && self.inherits_proxy_passes(vhost);
        self.proxy_passes.iter().filter(move |p| {
            p.context.location.is_none()
                && (p.context.vhost == vhost || (inherit && p.context.vhost.is_none()))
        })
    }

    /// The `<Location>` blocks that apply in a server, in Apache's merge order: the main
    /// server's, then the virtual host's. Where several match a request, a later one's
    /// directive overrides an earlier one's (Apache's section merge).
    pub fn locations_in(
        &self,
        vhost: Option<usize>,
    ) -> impl Iterator<Item = (usize, &LocationConfig)> + '_ {
        let main = self
            .locations
            .iter()
            .enumerate()
            .filter(|(_, l)| l.vhost.is_none());
        let own = self
            .locations
            .iter()
            .enumerate()
            .filter(move |(_, l)| vhost.is_some() && l.vhost == vhost);
        main.chain(own)
    }

    /// The `ProxyPassReverse` lines of a server outside `<Location>`: the main server's,
    /// then the virtual host's (Apache appends them).
    pub fn server_proxy_pass_reverses(
        &self,
        vhost: Option<usize>,
    ) -> impl Iterator<Item = &ProxyPassReverseConfig> + '_ {
        self.proxy_pass_reverses
            .iter()
            .filter(move |r| r.context.location.is_none() && in_server(r.context.vhost, vhost))
    }

    /// The `ProxyPassReverseCookieDomain` (`domain = true`) or `…CookiePath` lines of a
    /// server outside `<Location>`: the main server's, then the virtual host's.
    pub fn server_cookie_rewrites(
        &self,
        vhost: Option<usize>,
        domain: bool,
    ) -> impl Iterator<Item = &CookieRewrite> + '_ {
        let list = if domain {
            &self.proxy_pass_reverse_cookie_domains
        } else {
            &self.proxy_pass_reverse_cookie_paths
        };
        list.iter()
            .filter(move |r| r.context.location.is_none() && in_server(r.context.vhost, vhost))
    }

    /// The `Header` lines of a server outside `<Location>`: the main server's, then the
    /// virtual host's (mod_headers merges them in that order).
    pub fn server_headers(
        &self,
        vhost: Option<usize>,
    ) -> impl Iterator<Item = &HeaderDirective> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.context.location.is_none() && in_server(h.context.vhost, vhost))
    }
}

/// Whether a directive of server `of` applies in server `vhost`: its own, or the main
/// server's.
fn in_server(of: Option<usize>, vhost: Option<usize>) -> bool {
    of.is_none() || of == vhost
}
