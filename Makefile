# Broadway in C.  `make run` and `make test` are the two commands a newcomer
# needs; both install what is missing first (scripts/install-deps).
#
#   make            build bin/
#   make run        the whole service on the embedded FerretDB, foreground
#   make test       every test (the include-cycle check of common/, unit, then
#                   integration against the real stack)
#   make bench      the benchmark (BENCH_QUICK=1 for the short one)
#   make SAN=1 ...  the same with AddressSanitizer + UBSan (objects in build/san)
#   make format     clang-format the tree

CC      ?= cc
PKGS    := libmongoc-1.0 json-c
SAN     ?= 0

ifeq ($(SAN),1)
  BUILD    := build/san
  BIN      := build/san/bin
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
  BUILD    := build/default
  BIN      := bin
  SANFLAGS :=
endif

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -Icommon $(SANFLAGS)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDLIBS  = $(PKG_LIBS)

COMMON_SRC := $(sort $(wildcard common/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
COMMON_LIB := $(BUILD)/libbroadway.a

FCGI_SRC   := $(sort $(wildcard fcgi/*.c))
REAPER_SRC := $(sort $(wildcard reaper/*.c))
GRADER_SRC := $(sort $(wildcard grader/*.c))
BENCH_SRC  := $(sort $(wildcard bench/*.c))
CLI_SRC    := $(sort $(wildcard cli/*.c))

PROGRAMS := $(BIN)/broadway-fcgi $(BIN)/broadway-reaper $(BIN)/broadway
ifneq ($(GRADER_SRC),)
  PROGRAMS += $(BIN)/broadway-grader
endif

UNIT_SRC := $(sort $(wildcard tests/unit/check_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
INTEG_SRC := $(sort $(wildcard tests/integration/check_*.c))
INTEG_BIN := $(INTEG_SRC:tests/integration/%.c=$(BUILD)/tests/%)
TESTLIB_SRC := $(sort $(wildcard tests/lib/*.c))
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)

.PHONY: all deps run test unit integration web-test bench format clean
all: $(PROGRAMS)

deps:
	@scripts/install-deps

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

$(COMMON_LIB): $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/broadway-fcgi: $(FCGI_SRC:%.c=$(BUILD)/%.o) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ -lfcgi $(LDLIBS)

$(BIN)/broadway-reaper: $(REAPER_SRC:%.c=$(BUILD)/%.o) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/broadway-grader: $(GRADER_SRC:%.c=$(BUILD)/%.o) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ -lcurl $(LDLIBS) -lpthread

# The staff's command: json-c and libcurl, and of common/ only text.o (no
# libbroadway, so no libmongoc).
$(BIN)/broadway: $(CLI_SRC:%.c=$(BUILD)/%.o) $(BUILD)/common/text.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ -lcurl -ljson-c

$(BUILD)/tests/check_%: $(BUILD)/tests/unit/check_%.o $(TESTLIB_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs check 2>/dev/null) -lcurl

$(BUILD)/tests/check_%: $(BUILD)/tests/integration/check_%.o $(TESTLIB_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs check 2>/dev/null) -lcurl

run: deps all
	@scripts/broadway-run

unit: $(UNIT_BIN)
	@scripts/run-tests $(UNIT_BIN)

# The status page in headless chromium (Debian's, via chromium-driver and
# python3-selenium) against scripts/broadway-run; at most 240 s (13 s
# here).  Screenshots: build/web-test/.
web-test: all
	@echo "== tests/web/test_status_page.py"
	@/usr/bin/python3 tests/web/test_status_page.py

integration: all $(INTEG_BIN)
	@BROADWAY_BIN=$(CURDIR)/$(BIN) scripts/run-tests $(INTEG_BIN)

test: deps
	@$(MAKE) --no-print-directory all
	@scripts/check-includes
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory deploy-test
	@$(MAKE) --no-print-directory web-test
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30

# The production deployment end to end (tests/deploy/check-deploy: make deb,
# make install into a scratch root, private nginx and Apache instances over
# HTTPS, reload/stop under load); 30 to 90 s here, killed after 10 min.
.PHONY: deploy-test
deploy-test: all
	@timeout -k 10 600 tests/deploy/check-deploy

# --- bench ---
# The benchmark (issue 5, docs/BENCHMARKS.md): bench/run-bench starts the
# stack and the baselines, runs the four programs below and prints the
# table.  BENCH_QUICK=1 for the short version, BENCH_GRADERS=G (16).
BENCH_OUT      := $(BUILD)/bench
BENCH_PROGRAMS := $(BENCH_OUT)/bw-load $(BENCH_OUT)/bw-dblimit \
                  $(BENCH_OUT)/bw-nullfcgi $(BENCH_OUT)/bw-history \
                  $(BENCH_OUT)/bw-longpoll $(BENCH_OUT)/bw-stream
# bw-dblimit counts and times the driver calls common/ makes (dblimit.c).
BENCH_WRAPPED  := mongoc_collection_insert_one mongoc_collection_find_with_opts \
                  mongoc_cursor_next mongoc_cursor_destroy \
                  mongoc_collection_update_one mongoc_collection_delete_one \
                  mongoc_collection_find_and_modify_with_opts \
                  mongoc_bulk_operation_execute
BENCH_COMMA    := ,
BENCH_WRAP     := $(foreach f,$(BENCH_WRAPPED),-Wl$(BENCH_COMMA)--wrap=$(f))

# bench/ shares the test library's small helpers (tests/lib/util.h).
BENCH_UTIL     := $(BUILD)/tests/lib/util.o

$(BENCH_OUT)/bw-load: $(BUILD)/bench/load.o $(BUILD)/bench/client.o \
                      $(BUILD)/bench/bench.o $(BENCH_UTIL)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ -lcurl $(LDLIBS) -lpthread

$(BENCH_OUT)/bw-longpoll: $(BUILD)/bench/longpoll.o $(BUILD)/bench/client.o \
                          $(BUILD)/bench/bench.o $(BENCH_UTIL)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ -lcurl $(LDLIBS) -lpthread

# bw-stream: SSE streams through nginx; moves their jobs through common/.
$(BENCH_OUT)/bw-stream: $(BUILD)/bench/stream.o $(BUILD)/bench/client.o \
                        $(BUILD)/bench/bench.o $(BENCH_UTIL) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ -lcurl $(LDLIBS) -lpthread

$(BENCH_OUT)/bw-dblimit: $(BUILD)/bench/dblimit.o $(BUILD)/bench/bench.o \
                         $(BENCH_UTIL) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BENCH_WRAP) -o $@ $^ $(LDLIBS)

# bw-history: the history phase (fills the database through the driver).
$(BENCH_OUT)/bw-history: $(BUILD)/bench/history.o $(BUILD)/bench/client.o \
                         $(BUILD)/bench/bench.o $(BENCH_UTIL) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ -lcurl $(LDLIBS)

$(BENCH_OUT)/bw-nullfcgi: $(BUILD)/bench/nullfcgi.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ -lfcgi

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_PROGRAMS)
	@BENCH_BIN=$(CURDIR)/$(BENCH_OUT) BROADWAY_BIN=$(CURDIR)/$(BIN) bench/run-bench
# --- end bench ---

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin/broadway-*

-include $(shell find build -name '*.d' -type f 2>/dev/null)

# --- fuzz ---
# libFuzzer over the body parser, the validators and the env resolver (pure
# functions, no database).  Every file of tests/fuzz/corpus (seeds and the
# crashes found so far) is first run once as a regression test, then the
# fuzzer runs FUZZ_SECONDS.  New inputs and crashes go to tests/fuzz/out/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BIN     := build/fuzz/fuzz_body
FUZZ_SRC     := tests/fuzz/fuzz_body.c common/json.c common/validate.c \
                common/env.c common/error.c common/config.c common/text.c
FUZZ_CFLAGS  := -g -O1 -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -Icommon \
                -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -fno-omit-frame-pointer

.PHONY: fuzz
$(FUZZ_BIN): $(FUZZ_SRC) $(wildcard common/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(PKG_CFLAGS) -o $@ $(FUZZ_SRC) $(PKG_LIBS)

fuzz: $(FUZZ_BIN)
	@mkdir -p tests/fuzz/out/corpus
	@$(FUZZ_BIN) tests/fuzz/corpus/* >build/fuzz/regressions.log 2>&1 || \
	  { cat build/fuzz/regressions.log; exit 1; }
	@echo "fuzz: $$(ls tests/fuzz/corpus | wc -l) corpus files pass;" \
	  "fuzzing $(FUZZ_SECONDS) s (log: build/fuzz/fuzz.log)"
	@$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 \
	  -rss_limit_mb=2048 -dict=tests/fuzz/fuzz_body.dict -print_final_stats=1 \
	  -artifact_prefix=tests/fuzz/out/ tests/fuzz/out/corpus tests/fuzz/corpus \
	  >build/fuzz/fuzz.log 2>&1 || \
	  { tail -n 60 build/fuzz/fuzz.log; echo "fuzz: the input is in" \
	    "tests/fuzz/out/; once fixed, add it to tests/fuzz/corpus/"; exit 1; }
	@grep -E '^Done ' build/fuzz/fuzz.log | sed 's/^/fuzz: /'

# --- test-san ---
# Unit and integration tests with ASan + UBSan in every program (build/san).
# Sanitizer reports of the service's own processes (FastCGI workers, the
# reaper) go to build/san/reports/ instead of their logs, which the tests
# delete: any report there fails the target, even when no test noticed.
SAN_REPORTS := $(CURDIR)/build/san/reports
.PHONY: test-san
test-san: deps
	@rm -rf $(SAN_REPORTS) && mkdir -p $(SAN_REPORTS)
	@$(MAKE) --no-print-directory SAN=1 all
	@$(MAKE) --no-print-directory SAN=1 $(UNIT_SRC:tests/unit/%.c=build/san/tests/%) \
	  $(INTEG_SRC:tests/integration/%.c=build/san/tests/%)
	@rc=0; ASAN_OPTIONS=detect_leaks=1:log_path=$(SAN_REPORTS)/asan \
	  UBSAN_OPTIONS=print_stacktrace=1:log_path=$(SAN_REPORTS)/ubsan \
	  BROADWAY_BIN=$(CURDIR)/build/san/bin scripts/run-tests \
	  $(UNIT_SRC:tests/unit/%.c=build/san/tests/%) \
	  $(INTEG_SRC:tests/integration/%.c=build/san/tests/%) || rc=1; \
	if ls $(SAN_REPORTS) | grep -q .; then \
	  echo "test-san: sanitizer reports in $(SAN_REPORTS):"; \
	  for f in $(SAN_REPORTS)/*; do echo "== $$f"; \
	    grep -n -A24 -E 'ERROR|Direct leak|runtime error' "$$f" | head -n 120; \
	    grep -h 'SUMMARY' "$$f"; done; rc=1; \
	else echo "test-san: no sanitizer report"; fi; exit $$rc

# --- valgrind ---
# The FastCGI pool under valgrind (BROADWAY_FCGI_WRAPPER) through the API
# and bad-input suites; every process's log (parent and each worker) must
# show no error and no definite or indirect leak.
VALGRIND_DIR  := $(CURDIR)/build/valgrind
VALGRIND_RUN  := valgrind --leak-check=full --show-leak-kinds=definite,indirect \
                 --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
                 --num-callers=30 --log-file=$(VALGRIND_DIR)/fcgi.%p.log
VALGRIND_TESTS ?= check_api check_badinput
.PHONY: valgrind
valgrind: all $(VALGRIND_TESTS:%=$(BUILD)/tests/%)
	@rm -rf $(VALGRIND_DIR) && mkdir -p $(VALGRIND_DIR)
	@BROADWAY_FCGI_WRAPPER="$(VALGRIND_RUN)" CK_TIMEOUT_MULTIPLIER=10 \
	  BROADWAY_BIN=$(CURDIR)/$(BIN) scripts/run-tests \
	  $(VALGRIND_TESTS:%=$(BUILD)/tests/%)
	@logs=$$(ls $(VALGRIND_DIR)/fcgi.*.log 2>/dev/null | wc -l); \
	bad=$$(grep -L 'ERROR SUMMARY: 0 errors' $(VALGRIND_DIR)/fcgi.*.log); \
	leaks=$$(grep -lE '(definitely|indirectly) lost: [1-9]' $(VALGRIND_DIR)/fcgi.*.log); \
	if [ "$$logs" -eq 0 ] || [ -n "$$bad$$leaks" ]; then \
	  echo "valgrind: $$logs logs; errors or leaks in: $$bad $$leaks"; \
	  for f in $$bad $$leaks; do echo "== $$f"; tail -n 60 $$f; done; exit 1; \
	fi; \
	echo "valgrind: $$logs FastCGI processes, no error, no leak"

# --- install / deb ---
# `make install DESTDIR= PREFIX=/usr/local`: the programs (bin/broadway too),
# the status page (share/broadway/web), the config
# (/etc/broadway/broadway.conf, kept if present), systemd units, the nginx
# snippet and upstream, the Apache conf, logrotate, man pages, the schema
# and deploy/setup-system (the user, data dir and token; run it once as
# root after installing).  `make deb`: the same with PREFIX=/usr as a
# Debian package whose postinst runs setup-system.  docs/DEPLOY.md.
PREFIX     ?= /usr/local
DESTDIR    ?=
VERSION    := $(shell sed -n 's/^\#define BW_VERSION "\(.*\)"/\1/p' common/version.h)
I_BIN      := $(DESTDIR)$(PREFIX)/bin
I_LIB      := $(DESTDIR)$(PREFIX)/lib/broadway
I_SHARE    := $(DESTDIR)$(PREFIX)/share/broadway
I_MAN      := $(DESTDIR)$(PREFIX)/share/man/man8
I_MAN1     := $(DESTDIR)$(PREFIX)/share/man/man1
I_UNITS    := $(DESTDIR)$(PREFIX)/lib/systemd/system
I_ETC      := $(DESTDIR)/etc
UNIT_SED   := -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@SHAREDIR@|$(PREFIX)/share/broadway|g' \
              -e 's|@LIBDIR@|$(PREFIX)/lib/broadway|g'
UNITS      := broadway-fcgi.service broadway-reaper.service broadway-reaper.timer
ifneq ($(wildcard bin/ferretdb),)
  UNITS    += broadway-ferretdb.service
endif

.PHONY: install deb
install: all
	install -d $(I_BIN) $(I_SHARE)/sql-free-schema $(I_SHARE)/web $(I_MAN) $(I_MAN1) $(I_UNITS) \
	  $(I_ETC)/broadway $(I_ETC)/nginx/snippets $(I_ETC)/nginx/conf.d \
	  $(I_ETC)/apache2/conf-available $(I_ETC)/logrotate.d
	install -m 0755 $(PROGRAMS) $(I_BIN)/
	install -m 0644 sql-free-schema/*.json $(I_SHARE)/sql-free-schema/
	install -m 0755 deploy/setup-system $(I_SHARE)/setup-system
	sed -f deploy/installed-conf.sed broadway.conf > $(I_SHARE)/broadway.conf.dist
	@if [ -e $(I_ETC)/broadway/broadway.conf ]; then \
	  echo "install: keeping $(I_ETC)/broadway/broadway.conf" \
	    "(the new defaults are in $(I_SHARE)/broadway.conf.dist)"; \
	else install -m 0640 $(I_SHARE)/broadway.conf.dist $(I_ETC)/broadway/broadway.conf; fi
	for u in $(UNITS); do \
	  sed $(UNIT_SED) deploy/$$u.in > $(I_UNITS)/$$u && chmod 0644 $(I_UNITS)/$$u; done
	if [ -x bin/ferretdb ]; then install -d $(I_LIB) && \
	  install -m 0755 bin/ferretdb $(I_LIB)/ferretdb; fi
	install -m 0644 deploy/nginx-snippet.conf $(I_ETC)/nginx/snippets/broadway.conf
	install -m 0644 deploy/nginx-upstream.conf $(I_ETC)/nginx/conf.d/broadway.conf
	sed $(UNIT_SED) deploy/nginx-status-page.conf.in > $(I_ETC)/nginx/snippets/broadway-status-page.conf
	install -m 0644 web/index.html web/app.css web/app.js $(I_SHARE)/web/
	install -m 0644 deploy/apache.conf $(I_ETC)/apache2/conf-available/broadway.conf
	install -m 0644 deploy/logrotate $(I_ETC)/logrotate.d/broadway
	for p in fcgi reaper grader; do \
	  sed 's|@VERSION@|$(VERSION)|' deploy/man/broadway-$$p.8 | gzip -9n > $(I_MAN)/broadway-$$p.8.gz; done
	gzip -9n < cli/broadway.1 > $(I_MAN1)/broadway.1.gz

DEB_ROOT := build/deb/root
DEB_FILE := build/broadway_$(VERSION)_$(shell dpkg --print-architecture 2>/dev/null || echo amd64).deb
deb: all
	rm -rf $(DEB_ROOT) && mkdir -p $(DEB_ROOT)/DEBIAN
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_ROOT) PREFIX=/usr >/dev/null
	sed -e 's|@VERSION@|$(VERSION)|' \
	  -e "s|@ARCH@|$$(dpkg --print-architecture)|" \
	  -e "s|@SIZE@|$$(du -sk $(DEB_ROOT) | cut -f1)|" \
	  deploy/debian/control.in > $(DEB_ROOT)/DEBIAN/control
	cd $(DEB_ROOT) && find etc -type f | sed 's|^|/|' > DEBIAN/conffiles
	install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm $(DEB_ROOT)/DEBIAN/
	dpkg-deb --root-owner-group -Zgzip --build $(DEB_ROOT) $(DEB_FILE) >/dev/null
	@echo "deb: $(DEB_FILE)"
# --- end install / deb ---

# --- soak ---
# Faults in combination (issue 11, tests/soak/soak.c): SOAK_SECONDS of random
# kill -9s, database stops and misbehaving graders against the whole stack,
# then the exactly-once invariants.  SOAK_SEED=S replays a schedule.
SOAK_SECONDS ?= 60
$(BUILD)/tests/bw-soak: $(BUILD)/tests/soak/soak.o $(TESTLIB_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs check 2>/dev/null) -lcurl

.PHONY: soak
soak: deps
	@$(MAKE) --no-print-directory all $(BUILD)/tests/bw-soak
	@BROADWAY_BIN=$(CURDIR)/$(BIN) SOAK_SECONDS=$(SOAK_SECONDS) \
	  SOAK_SEED=$(SOAK_SEED) $(BUILD)/tests/bw-soak
# --- end soak ---
