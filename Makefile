# SPDX-License-Identifier: BSD-2-Clause
# migkit - small Unix filters that carry a VM's migration stream.
# make | make check | make install PREFIX=... DESTDIR=... | make demo | make bench

# Every filters/NAME.c that ends in MIG_FILTER(NAME) becomes the command
# mig-NAME, linked with LIBS_FILTER_NAME. Its decoding alias (a link) is
# the filter's own .decode_name, read from its source: one place says it.
paren := (
FILTERS = $(basename $(notdir $(shell grep -l '^MIG_FILTER$(paren)' filters/*.c)))
LIBS_FILTER_checksum =
LIBS_FILTER_compress = -lzstd -llz4 -ldeflate
LIBS_FILTER_encrypt = -lsodium -lcrypto
decode_name = $(shell sed -n 's/^[[:space:]]*\.decode_name = "\([a-z0-9-]*\)",.*/\1/p' filters/$(1).c)
$(foreach f,$(FILTERS),$(eval ALIAS_$(f) := $(call decode_name,$(f))))

# Filters that live in the channel library, which peels them itself.
CHANNEL_FILTERS = envelope
# Layers whose command is a tool of its own (mig-delta needs a base):
# emu-glue/NAME-layer.c holds the filter, so mig-info opens them too.
LAYER_FILTERS = delta

# Commands that are not layer filters: tools/mig-NAME.c, linked with
# OBJS_NAME and LIBS_NAME.
TOOLS = info tee ssh keygen compact delta

# Commands that drive emulators: emu-glue/mig-NAME.c, linked with OBJS_NAME
# and LIBS_NAME like the tools.
GLUE = recv qemu

VERSION = $(shell sed -n 's/^\#define MIG_VERSION_STRING "\(.*\)"/\1/p' channel/mig.h)
PREFIX ?= /usr/local
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
INCDIR = $(PREFIX)/include
LIBDIR = $(PREFIX)/lib

CC ?= cc
CFLAGS ?= -O2 -g
MIG_CFLAGS = -pthread -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Ichannel -Ifilters -Iemu-glue
LIBS_JSON = $(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson)
# the channel library signs envelopes: Ed25519 (libsodium), SHA-256 (OpenSSL)
LIBS = -lxxhash -lsodium -lcrypto -pthread
FILTER_LIBS = $(foreach f,$(FILTERS),$(LIBS_FILTER_$(f)))

# make check SANITIZE=1: AddressSanitizer and UndefinedBehaviorSanitizer.
# Undefined behaviour ends the program (exit status 1 and a report), so a
# test that meets it fails instead of printing a line nobody reads.
ifeq ($(SANITIZE),1)
SANITIZERS = -fsanitize=address,undefined -fno-sanitize-recover=undefined
CFLAGS += $(SANITIZERS) -fno-omit-frame-pointer
LDFLAGS += $(SANITIZERS)
endif

B = build
CHANNEL_SRC = $(filter-out channel/main.c,$(wildcard channel/*.c))
CHANNEL_OBJ = $(CHANNEL_SRC:%.c=$(B)/%.o)
# the filters, and the code they share that is no filter of its own
FILTER_SHARED = keyfile
FILTER_OBJ = $(FILTERS:%=$(B)/filters/%.o) $(FILTER_SHARED:%=$(B)/filters/%.o) \
	$(LAYER_FILTERS:%=$(B)/emu-glue/%-layer.o)
COMMANDS = $(FILTERS:%=$(B)/bin/mig-%) $(CHANNEL_FILTERS:%=$(B)/bin/mig-%) \
	$(TOOLS:%=$(B)/bin/mig-%) $(GLUE:%=$(B)/bin/mig-%)
ALIASES = $(foreach f,$(FILTERS),$(if $(ALIAS_$(f)),$(B)/bin/mig-$(ALIAS_$(f))))
UNIT_TESTS = $(B)/tests/test-channel $(B)/tests/test-qemu-stream \
	$(B)/tests/test-compress $(B)/tests/test-sign $(B)/tests/test-xbzrle \
	$(B)/tests/test-delta
MAN = $(wildcard man/*.[157])
HOOK = $(B)/libexec/migkit/mig-libvirt-hook $(B)/libexec/migkit/libvirt/lzop

all: $(COMMANDS) $(ALIASES) $(HOOK)

# libvirt's save image compressor (mig-libvirt(7)): the script, and the
# directory libvirtd's PATH starts with, where it is called lzop.
LIBEXECDIR = $(PREFIX)/libexec/migkit
$(B)/libexec/migkit/mig-libvirt-hook: tools/mig-libvirt-hook
	@mkdir -p $(dir $@)
	install -m 755 $< $@
$(B)/libexec/migkit/libvirt/lzop: | $(B)/libexec/migkit/mig-libvirt-hook
	@mkdir -p $(dir $@)
	ln -sf ../mig-libvirt-hook $@

# Only the goals that promise to install what is missing run install-deps
# (and so maybe apt-get) before building: a plain `make` never does.
DEPS_FIRST = $(if $(filter deps check demo bench fuzz,$(MAKECMDGOALS)),deps)

# Header dependencies from the compiler itself (-MMD -MP). Make's own
# implicit rules are off: one of them would try to link a .d file.
MAKEFLAGS += --no-builtin-rules
.SUFFIXES:
DEPFLAGS = -MMD -MP
-include $(shell find $(B) -name '*.d' 2>/dev/null)
$(B)/%.d: ;

# Objects built with other flags (SANITIZE=1 or not, another CFLAGS) do
# not link together: when the flags change, the stamp does, and with it
# every object.
FLAGS_STAMP = $(B)/.flags
BUILD_FLAGS = $(CC) $(MIG_CFLAGS) $(CFLAGS) $(LDFLAGS)
ifneq ($(BUILD_FLAGS),$(shell cat $(FLAGS_STAMP) 2>/dev/null))
$(shell mkdir -p $(B) && printf '%s\n' '$(BUILD_FLAGS)' > $(FLAGS_STAMP))
endif
$(FLAGS_STAMP): ;

$(B)/%.o: %.c $(FLAGS_STAMP) | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(CC) $(MIG_CFLAGS) $(DEPFLAGS) $(CFLAGS) -c $< -o $@

$(B)/libmigchan.a: $(CHANNEL_OBJ)
	$(AR) rcs $@ $^

# Where filters built outside migkit name their layer kinds (detect.c).
KINDSDIR = $(PREFIX)/share/migkit/kinds.d
$(B)/channel/detect.o: MIG_CFLAGS += -DMIG_KINDS_DIR='"$(KINDSDIR)"'

# The library as an SDK for such filters: pkg-config --static migchan.
$(B)/migchan.pc: Makefile
	@mkdir -p $(dir $@)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' \
		'includedir=$${prefix}/include' '' 'Name: migchan' \
		'Description: migkit channel library: layer filters for migration streams' \
		'Version: $(VERSION)' 'Cflags: -I$${includedir}' \
		'Libs: -L$${libdir} -lmigchan' \
		'Libs.private: $(LIBS)' > $@

# The same main(), built once per filter against that filter's symbol.
$(B)/main-%.o: channel/main.c $(FLAGS_STAMP) | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(CC) $(MIG_CFLAGS) $(DEPFLAGS) $(CFLAGS) -DMIG_FILTER_NAME=$* -c $< -o $@

# mig-encrypt's keys (filters/keyfile.c) go with it wherever it goes
EXTRA_OBJ_encrypt = $(B)/filters/keyfile.o
.SECONDEXPANSION:
$(B)/bin/mig-%: $(B)/main-%.o $(B)/filters/%.o $$(EXTRA_OBJ_$$*) $(B)/libmigchan.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(LIBS_FILTER_$*)

$(CHANNEL_FILTERS:%=$(B)/bin/mig-%): $(B)/bin/mig-%: $(B)/main-%.o $(B)/libmigchan.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

define alias_rule
$(B)/bin/mig-$(ALIAS_$(1)): $(B)/bin/mig-$(1)
	ln -sf mig-$(1) $$@
endef
$(foreach f,$(FILTERS),$(if $(ALIAS_$(f)),$(eval $(call alias_rule,$(f)))))

$(B)/filters/all.o: filters/all.c Makefile $(FLAGS_STAMP) | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(CC) $(MIG_CFLAGS) $(DEPFLAGS) $(CFLAGS) '-DMIG_FILTER_LIST=$(foreach f,$(FILTERS) $(CHANNEL_FILTERS) $(LAYER_FILTERS),X($(f)))' -c $< -o $@

# the QEMU stream reader, and libvirt's save image header it skips
QS_OBJ = $(B)/emu-glue/qemu-stream.o $(B)/emu-glue/libvirt-image.o
OBJS_info = $(B)/filters/all.o $(FILTER_OBJ) $(QS_OBJ) \
	$(B)/emu-glue/qemu-compact.o
LIBS_info = $(FILTER_LIBS) $(LIBS_JSON)
# mig-compact: the stream reader's hooks (qemu-compact.c) rebuild the stream
OBJS_compact = $(QS_OBJ) $(B)/emu-glue/qemu-compact.o
LIBS_compact = $(LIBS_JSON)
# mig-delta: the compactor's index with a key per page (qemu-delta*.c)
DELTA_OBJ = $(B)/emu-glue/qemu-delta.o $(B)/emu-glue/qemu-delta-rebuild.o \
	$(B)/emu-glue/delta-layer.o $(B)/emu-glue/xbzrle.o
OBJS_delta = $(QS_OBJ) $(B)/emu-glue/qemu-compact.o $(DELTA_OBJ)
LIBS_delta = $(LIBS_JSON)
OBJS_tee = $(QS_OBJ) $(B)/emu-glue/qemu-compact.o
LIBS_tee = $(LIBS_JSON)
# mig-ssh's steps, one file each (tools/mig-ssh.h)
OBJS_ssh = $(addprefix $(B)/tools/,ssh-cmdline.o ssh-strict.o ssh-config.o \
	ssh-auth.o ssh-transfer.o ssh-prefetch.o)
LIBS_ssh = -lssh
# mig-keygen writes the key files that the filters read, through the same
# code (filters/keyfile.c, channel/keyfile.c): libsodium, nothing else.
OBJS_keygen = $(B)/filters/keyfile.o
LIBS_ONLY_keygen = -lsodium -pthread

# One rule for the commands of any folder: DIR/mig-NAME.c with OBJS_NAME.
define command_rule
$(B)/bin/mig-$(2): $(B)/$(1)/mig-$(2).o $$(OBJS_$(2)) $(B)/libmigchan.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(or $$(LIBS_ONLY_$(2)),$$(LIBS) $$(LIBS_$(2)))
endef
$(foreach t,$(TOOLS),$(eval $(call command_rule,tools,$(t))))

# mig-recv's parts (emu-glue/mig-recv.h)
OBJS_recv = $(addprefix $(B)/emu-glue/,recv-argv.o recv-emu.o recv-feed.o \
	recv-trust.o) \
	$(B)/emu-glue/qmp.o $(QS_OBJ)
LIBS_recv = $(LIBS_JSON)
# mig-qemu's parts (emu-glue/mig-qemu.h)
OBJS_qemu = $(addprefix $(B)/emu-glue/,qemu-strings.o qemu-seal.o qemu-converge.o \
	qemu-migrate.o qemu-restore.o qemu-chain.o) \
	$(B)/emu-glue/qmp.o $(QS_OBJ)
LIBS_qemu = $(LIBS_JSON)

$(foreach t,$(GLUE),$(eval $(call command_rule,emu-glue,$(t))))

$(B)/tests/test-channel: $(B)/tests/unit/test-channel.o $(FILTER_OBJ) \
		$(B)/filters/all.o $(B)/libmigchan.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(FILTER_LIBS)

$(B)/tests/test-compress: $(B)/tests/unit/test-compress.o \
		$(B)/filters/compress.o $(B)/libmigchan.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(LIBS_FILTER_compress)

$(B)/tests/test-xbzrle: $(B)/tests/unit/test-xbzrle.o $(B)/emu-glue/xbzrle.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^

$(B)/tests/test-delta: $(B)/tests/unit/test-delta.o $(OBJS_delta) \
		$(B)/libmigchan.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(LIBS_JSON)

$(B)/tests/test-sign: $(B)/tests/unit/test-sign.o $(B)/libmigchan.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/test-qemu-stream: $(B)/tests/unit/test-qemu-stream.o \
		$(QS_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_JSON)

# Fuzzing: libFuzzer targets (tests/fuzz), run for FUZZ_SECONDS each by
# `make fuzz`; `make check` replays their corpus and every crash found.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS = stream walk meta qemu-stream delta encrypt $(patsubst %,layer-%,$(filter-out encrypt,$(FILTERS)))
FUZZ_SRC = $(CHANNEL_SRC) $(FILTERS:%=filters/%.c) $(FILTER_SHARED:%=filters/%.c) \
	filters/all.c emu-glue/qemu-stream.c emu-glue/libvirt-image.c emu-glue/qemu-compact.c \
	emu-glue/delta-layer.c emu-glue/qemu-delta.c emu-glue/qemu-delta-rebuild.c \
	emu-glue/xbzrle.c
FUZZ_LIST = '-DMIG_FILTER_LIST=$(foreach f,$(FILTERS) $(CHANNEL_FILTERS) $(LAYER_FILTERS),X($(f)))'
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
	-pthread -Ichannel -Ifilters -Iemu-glue -Itests/fuzz $(FUZZ_LIST)
FUZZ_LIBS = $(LIBS) $(FILTER_LIBS) $(LIBS_JSON)
REPLAY_OBJS = $(B)/tests/fuzz/standalone.o $(B)/filters/all.o $(FILTER_OBJ) \
	$(QS_OBJ) $(B)/emu-glue/qemu-compact.o $(B)/emu-glue/qemu-delta.o \
	$(B)/emu-glue/qemu-delta-rebuild.o $(B)/emu-glue/xbzrle.o $(B)/libmigchan.a
REPLAYS = $(FUZZ_TARGETS:%=$(B)/fuzz/replay-%)

$(B)/fuzz/fuzz-layer-%: tests/fuzz/fuzz-layer.c $(FUZZ_SRC) | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -DFUZZ_FILTER=$* -o $@ $< $(FUZZ_SRC) $(FUZZ_LIBS)
$(B)/fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(FUZZ_SRC) | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRC) $(FUZZ_LIBS)
$(B)/fuzz/replay-layer-%: tests/fuzz/fuzz-layer.c $(REPLAY_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(MIG_CFLAGS) -Itests/fuzz $(CFLAGS) -DFUZZ_FILTER=$* $(LDFLAGS) -o $@ $^ $(FUZZ_LIBS)
$(B)/fuzz/replay-%: tests/fuzz/fuzz-%.c $(REPLAY_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(MIG_CFLAGS) -Itests/fuzz $(CFLAGS) $(LDFLAGS) -o $@ $^ $(FUZZ_LIBS)
$(B)/tests/fuzz/standalone.o: MIG_CFLAGS += -Itests/fuzz

fuzz: $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz-%)
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/run-fuzz $(FUZZ_TARGETS)

# Installs what is missing (Debian); quiet when all is there.
deps:
	@scripts/install-deps

check: all $(UNIT_TESTS) $(REPLAYS)
	SANITIZE=$(SANITIZE) scripts/run-tests

demo: all
	MIG_BIN=$(CURDIR)/$(B)/bin scripts/demo

bench: all
	MIG_BIN=$(CURDIR)/$(B)/bin bench/run

install: all $(B)/migchan.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR) \
		$(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(KINDSDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7
	install -m 755 $(COMMANDS) $(DESTDIR)$(BINDIR)
	$(foreach f,$(FILTERS),$(if $(ALIAS_$(f)),ln -sf mig-$(f) $(DESTDIR)$(BINDIR)/mig-$(ALIAS_$(f));))
	install -m 644 channel/mig.h $(DESTDIR)$(INCDIR)
	install -m 644 $(B)/libmigchan.a $(DESTDIR)$(LIBDIR)
	install -m 644 $(B)/migchan.pc $(DESTDIR)$(LIBDIR)/pkgconfig
	for m in $(MAN); do \
		install -m 644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}; done
	install -d $(DESTDIR)$(LIBEXECDIR)/libvirt
	install -m 755 tools/mig-libvirt-hook $(DESTDIR)$(LIBEXECDIR)
	ln -sf ../mig-libvirt-hook $(DESTDIR)$(LIBEXECDIR)/libvirt/lzop

clean:
	rm -rf $(B)

.PHONY: all deps check demo bench fuzz install clean
.SECONDARY:
