# sed script: the repository's broadway.conf (defaults for `make run`) ->
# /etc/broadway/broadway.conf of an installed service (make install, .deb).
1i\
# Installed by `make install` or the Debian package; kept on upgrades.\
# The settings of an installed service differ from the defaults below in:\
# data_dir, listen, listen_group, listen_mode, user, group, log_file.\
# After a change: systemctl reload broadway-fcgi (listen, user: restart).\

s|^data_dir = var$|data_dir = /var/lib/broadway|
s|^# listen = unix:/run/broadway/fcgi.sock$|listen = unix:/run/broadway/fcgi.sock|
s|^# listen_group =$|listen_group = www-data|
s|^listen_mode = 0600$|listen_mode = 0660|
s|^# user =$|user = broadway|
s|^# group =$|group = broadway|
s|^# log_file =$|log_file = /var/log/broadway/broadway.log|
