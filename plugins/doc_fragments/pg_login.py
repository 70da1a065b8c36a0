# Copyright: warehouse-ops contributors
# Apache License 2.0
"""The login options of the project's PostgreSQL modules, documented once.

A module that connects to PostgreSQL takes these options from
plugins/module_utils/pg_connect.py (connection_argument_spec) and documents
them with

    extends_documentation_fragment:
      - pg_login

giving only the default of O(login_db), which differs by module. The names are
community.postgresql's, so that a play passes one set of connection variables
to either. tests/unit/test_module_docs.py checks that every module's documented
options and its argument_spec agree.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_user:
    description:
      - PostgreSQL role to connect as.
      - The postgres superuser over the unix socket (C(become_user=postgres),
        peer authentication) needs no password.
    type: str
    default: postgres
  login_password:
    description: Password of O(login_user); empty for peer authentication.
    type: str
    default: ""
  login_host:
    description: Host of PostgreSQL; empty connects over the unix socket in O(login_unix_socket).
    type: str
    default: ""
  login_unix_socket:
    description: Directory of PostgreSQL's unix socket, used when O(login_host) is empty.
    type: str
    default: /var/run/postgresql
  login_port:
    description:
      - PostgreSQL port (over the unix socket it names the socket file).
      - The alias O(port) is the option's former name, kept so that existing
        plays and ad-hoc calls keep working.
    type: int
    default: 5432
    aliases: [port]
  login_db:
    description: Database to connect to.
    type: str
  ssl_mode:
    description:
      - libpq C(sslmode) of a TCP connection (O(login_host)); not used over the unix socket.
      - C(verify-full) checks the server's certificate against O(ca_cert) and its host name.
      - The default, C(prefer), is libpq's.
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File of the CA certificate(s) the server's certificate must be signed
        by (libpq C(sslrootcert)), for O(ssl_mode=verify-ca) or O(ssl_mode=verify-full).
    type: str
    aliases: [ssl_rootcert]
  connect_timeout:
    description: Seconds to wait for the connection.
    type: int
    default: 10
"""
