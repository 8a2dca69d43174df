# fer-edge: `make run` starts the daemon, `make test` runs the tests; each sets up what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCE ?=
DATA ?= ../shared/data/fer2013
RUN ?= runs/compact

.PHONY: run test benchmark train teachers fer2013-model system-packages clean

$(VENV)/.edge: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.edge
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $@

run: $(VENV)/.edge  ## the daemon on camera 0, or SOURCE=clip/URL; events on the terminal
	$(VENV)/bin/fer-edge --source "$(or $(SOURCE),0)" --print $(ARGS)

benchmark: $(VENV)/.edge  ## on SOURCE, or on a generated clip of a drawn face
	$(VENV)/bin/fer-edge --benchmark $(if $(SOURCE),--source "$(SOURCE)") $(ARGS)

system-packages:  ## Debian's mosquitto (the MQTT tests' broker) and chromium (the page test's browser)
	@missing=""; \
	command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || missing="mosquitto"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

test: $(VENV)/.dev system-packages
	$(PY) -m pytest -q $(ARGS)

T = models/teachers
TEACHERS ?= $(T)/reference_ferplus.npz $(T)/reference_blend.npz $(T)/reference_blend2.npz $(T)/reference_blend3.npz \
  $(T)/reference_half.npz $(T)/reference_blend2b.npz $(T)/reference_blend3b.npz $(T)/reference_halfb.npz \
  $(T)/reference_blend2c.npz $(T)/compact_fer2013.npz
STUDENT ?= runs/student
STUDENT_FLAGS = --depth 3 --stem-stride 1 --labels blend --ferplus-weight 0.5 --distill-weight 0.6 \
  --distill-temperature 2 --warmup-epochs 1 --erase-prob 0.25 --mixup 0.2
FIRST_TEACHERS = --teacher-logits $(T)/reference_ferplus.npz $(T)/reference_blend.npz $(T)/compact_fer2013.npz \
  --teacher-weights 0.5 1 0.5
LAST_TEACHERS = --teacher-logits $(T)/reference_blend.npz $(T)/reference_blend2.npz $(T)/compact_fer2013.npz \
  --teacher-weights 0.5 0.75 0.25
ONLINE_TEACHERS = --teacher $(T)/reference_blend2.npz $(T)/reference_blend3.npz $(T)/reference_half.npz
SECOND_CYCLE_TEACHERS = --teacher $(T)/reference_blend2b.npz $(T)/reference_blend3b.npz
HALF_TEACHERS = $(SECOND_CYCLE_TEACHERS) $(T)/reference_halfb.npz
THIRD_CYCLE_TEACHERS = --teacher $(T)/reference_blend2c.npz $(T)/reference_blend3b.npz
# the last stages: no dropout, less weight decay
LAST_STAGE = --dropout 0 --weight-decay 0.01

# The shipped model (issue 28), resumable (re-run to continue): the committed teacher files -> the
# student (30 epochs, 16 more at a lower rate, 14 more distilling the two reference_blend seeds' saved
# logits, 12 more taught online by three reference teachers on each augmented batch, then 14 more taught
# online by the two second-cycle teachers, without dropout and with less weight decay; from there two
# branches of 8 epochs, one adding the half-and-half teacher, one with the third-cycle teacher in
# place of its second cycle) -> the mean of the weights of that stage and its two branches -> 6 more
# epochs from that mean at half the rate, taught by the three last teachers -> the mean of all four
# -> int8. (The shipped soup averaged the committed student17.npz and student20.npz, whose kernels are
# int8, with student23, which started from student17.npz, and student28, which started from
# soup25.npz; this recipe averages the float runs.)
# With the teacher files present it starts from the student; `make teachers` (or deleting them)
# retrains the teachers first.
train: $(VENV)/.dev  ## the shipped model: teachers' logits -> student -> models/fer_int8.tflite
	for t in $(TEACHERS); do test -f $$t || { $(MAKE) teachers; break; }; done
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(STUDENT) $(STUDENT_FLAGS) $(FIRST_TEACHERS) --epochs 30 \
	  --lr 3e-3 --patience 30 --seed 44
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(STUDENT)_ft --init-from $(STUDENT) $(STUDENT_FLAGS) \
	  $(FIRST_TEACHERS) --epochs 16 --lr 1e-3 --patience 16 --seed 45
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(STUDENT)_ft2 --init-from $(STUDENT)_ft $(STUDENT_FLAGS) \
	  $(LAST_TEACHERS) --epochs 14 --lr 1e-3 --patience 14 --seed 47
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(STUDENT)_ft3 --init-from $(STUDENT)_ft2 $(STUDENT_FLAGS) \
	  $(ONLINE_TEACHERS) --epochs 12 --lr 1e-3 --patience 12 --seed 50
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(STUDENT)_ft4 --init-from $(STUDENT)_ft3 $(STUDENT_FLAGS) \
	  $(SECOND_CYCLE_TEACHERS) $(LAST_STAGE) --lr 1e-3 --epochs 14 --patience 14 --seed 57
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(STUDENT)_half --init-from $(STUDENT)_ft4 $(STUDENT_FLAGS) \
	  $(HALF_TEACHERS) $(LAST_STAGE) --lr 1e-3 --epochs 8 --patience 8 --seed 60
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(STUDENT)_third --init-from $(STUDENT)_ft4 $(STUDENT_FLAGS) \
	  $(THIRD_CYCLE_TEACHERS) $(LAST_STAGE) --lr 1e-3 --epochs 8 --patience 8 --seed 63
	$(VENV)/bin/fer-train soup $(STUDENT)_third $(STUDENT)_ft4 $(STUDENT)_half --data $(DATA) --run $(STUDENT)_soup
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(STUDENT)_fourth --init-from $(STUDENT)_soup $(STUDENT_FLAGS) \
	  $(THIRD_CYCLE_TEACHERS) $(T)/reference_halfb.npz $(LAST_STAGE) --lr 5e-4 --epochs 6 --patience 6 --seed 66
	$(VENV)/bin/fer-train soup $(STUDENT)_fourth $(STUDENT)_third $(STUDENT)_ft4 $(STUDENT)_half --data $(DATA) \
	  --run $(STUDENT)_soup4
	$(VENV)/bin/fer-quantize $(STUDENT)_soup4 --data $(DATA) --out models/fer_int8.tflite --flip-tta

# the reference teachers' recipe on the label blend: FER+ votes weighted 0.75 (three seeds) or 0.5 (half)
BLEND_TEACHER = --arch reference --width 1 --labels blend --epochs 14 --warmup-epochs 1 --lr 2e-3 --erase-prob 0.25 \
  --precision bf16
# one more cosine cycle of a teacher, from its best checkpoint at a third of the peak rate (SECOND_CYCLE: of a
# 0.75-blend teacher; reference_blend2 gets two, its third from the second's checkpoint)
CYCLE = $(BLEND_TEACHER) --epochs 8 --lr 7e-4
SECOND_CYCLE = $(CYCLE) --ferplus-weight 0.75

teachers: $(VENV)/.dev  ## the ten teachers, from scratch; their files to models/teachers/
	$(VENV)/bin/fer-train fit --data $(DATA) --run runs/teacher_ref --arch reference --width 1 --labels ferplus \
	  --epochs 10 --warmup-epochs 1 --lr 2e-3 --erase-prob 0.25 --precision bf16 --seed 21
	$(VENV)/bin/fer-train teacher runs/teacher_ref --data $(DATA) --out $(T)/reference_ferplus.npz
	$(VENV)/bin/fer-train fit --data $(DATA) --run runs/teacher_blend $(BLEND_TEACHER) --ferplus-weight 0.75 --seed 22
	$(VENV)/bin/fer-train teacher runs/teacher_blend --data $(DATA) --out $(T)/reference_blend.npz
	$(VENV)/bin/fer-train fit --data $(DATA) --run runs/teacher_blend2 $(BLEND_TEACHER) --ferplus-weight 0.75 --seed 23
	$(VENV)/bin/fer-train teacher runs/teacher_blend2 --data $(DATA) --out $(T)/reference_blend2.npz
	$(VENV)/bin/fer-train fit --data $(DATA) --run runs/teacher_blend2b $(SECOND_CYCLE) \
	  --init-from runs/teacher_blend2 --seed 27
	$(VENV)/bin/fer-train teacher runs/teacher_blend2b --data $(DATA) --out $(T)/reference_blend2b.npz
	$(VENV)/bin/fer-train fit --data $(DATA) --run runs/teacher_blend2c $(SECOND_CYCLE) \
	  --init-from runs/teacher_blend2b --seed 30
	$(VENV)/bin/fer-train teacher runs/teacher_blend2c --data $(DATA) --out $(T)/reference_blend2c.npz
	$(VENV)/bin/fer-train fit --data $(DATA) --run runs/teacher_blend3 $(BLEND_TEACHER) --ferplus-weight 0.75 --seed 24
	$(VENV)/bin/fer-train teacher runs/teacher_blend3 --data $(DATA) --out $(T)/reference_blend3.npz
	$(VENV)/bin/fer-train fit --data $(DATA) --run runs/teacher_blend3b $(SECOND_CYCLE) \
	  --init-from runs/teacher_blend3 --seed 28
	$(VENV)/bin/fer-train teacher runs/teacher_blend3b --data $(DATA) --out $(T)/reference_blend3b.npz
	$(VENV)/bin/fer-train fit --data $(DATA) --run runs/teacher_half $(BLEND_TEACHER) --ferplus-weight 0.5 --seed 25
	$(VENV)/bin/fer-train teacher runs/teacher_half --data $(DATA) --out $(T)/reference_half.npz
	$(VENV)/bin/fer-train fit --data $(DATA) --run runs/teacher_halfb $(CYCLE) --ferplus-weight 0.5 \
	  --init-from runs/teacher_half --seed 29
	$(VENV)/bin/fer-train teacher runs/teacher_halfb --data $(DATA) --out $(T)/reference_halfb.npz
	$(MAKE) fer2013-model
	$(VENV)/bin/fer-train teacher $(RUN)_okd3/fer_int8.tflite --data $(DATA) --out $(T)/compact_fer2013.npz

fer2013-model: $(VENV)/.dev  ## the compact net on FER-2013's labels (the model shipped before issue 28), int8
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(RUN) --epochs 36
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(RUN)_ft --init-from $(RUN) --epochs 60 --lr 2e-3 \
	  --warmup-epochs 2 --erase-prob 0.25 --patience 30
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(RUN)_ft2 --init-from $(RUN)_ft --epochs 50 --lr 1.5e-3 \
	  --warmup-epochs 2 --erase-prob 0.25 --patience 50 --seed 2
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(RUN)_ft3 --init-from $(RUN)_ft2 --epochs 50 --lr 1.5e-3 \
	  --warmup-epochs 2 --erase-prob 0.25 --patience 50 --seed 3
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(RUN)_okd --init-from $(RUN)_ft2 --teacher $(RUN)_ft $(RUN)_ft3 \
	  --distill-weight 0.9 --distill-temperature 1 --mixup 0.3 --erase-prob 0.25 --epochs 30 --lr 1e-3 \
	  --warmup-epochs 2 --patience 30 --seed 7
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(RUN)_okd2 --init-from $(RUN)_okd --teacher $(RUN)_ft $(RUN)_ft3 \
	  --distill-weight 0.9 --distill-temperature 1 --mixup 0.3 --erase-prob 0.25 --epochs 32 --lr 7e-4 \
	  --warmup-epochs 2 --patience 40 --seed 8
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(RUN)_ft2_cw0 --init-from $(RUN)_ft2 --class-weight-power 0 \
	  --epochs 16 --lr 5e-4 --warmup-epochs 1 --erase-prob 0.25 --patience 16 --seed 6
	$(VENV)/bin/fer-train fit --data $(DATA) --run $(RUN)_okd3 --init-from $(RUN)_okd2 \
	  --teacher $(RUN)_ft $(RUN)_ft3 $(RUN)_ft2_cw0 --distill-weight 0.9 --distill-temperature 1 --mixup 0.3 \
	  --erase-prob 0.25 --epochs 30 --lr 7e-4 --warmup-epochs 2 --patience 40 --seed 9
	$(VENV)/bin/fer-quantize $(RUN)_okd3 --data $(DATA) --out $(RUN)_okd3/fer_int8.tflite --flip-tta --no-calibrate

clean:
	rm -rf $(VENV) .cache .pytest_cache
