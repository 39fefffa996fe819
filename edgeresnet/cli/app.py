"""The `edgeresnet` command group: every user error, ours or click's, becomes one line and exit
code 2; each command lives in the module of its group and is a thin layer over a public function."""

from __future__ import annotations

import errno
import sys

import click

from ..errors import EdgeResNetError
from .bench import bench_command, report_command
from .catalog import models_command, recipes_group, targets_command
from .compress import compress, export
from .evaluate import evaluate_command, inspect
from .output import fail
from .prune import prune_command, sensitivity_command

NEEDS_COMPRESS_EXTRA = ("torch", "safetensors")


class Group(click.Group):
    """Turns every user error, ours or click's, into one line and exit code 2; SIGINT and SIGTERM
    into a clean stop (a run keeps what `--resume` continues from)."""

    def main(self, *args, **kwargs):
        from ..interrupts import Interrupted, stop_on_signals

        try:
            with stop_on_signals() as received:
                try:
                    return super().main(*args, standalone_mode=False, **kwargs)
                except Exception as error:
                    if received and not isinstance(error, click.exceptions.Exit):
                        raise Interrupted(received[0]) from error  # a library's error about our stop
                    raise
        except EdgeResNetError as error:
            fail(error.one_line(), code=error.exit_code)
        except ModuleNotFoundError as error:
            if error.name not in NEEDS_COMPRESS_EXTRA:
                raise
            # A runner-only install (a device): every command but `bench` needs PyTorch.
            fail(
                f"this command needs {error.name}, which a runner-only install lacks; install it with "
                f"pip install torch==2.13.0 'edgeresnet[compress]' (the CPU build of torch first)"
            )
        except click.UsageError as error:
            if type(error).__name__.startswith("NoArgsIsHelp"):  # bare `edgeresnet`: help, as asked
                click.echo(error.ctx.get_help())
                return
            hint = f" (see `{error.ctx.command_path} --help`)" if error.ctx else ""
            message = error.format_message()
            if isinstance(error, click.NoSuchOption) and error.option_name in OTHER_TOOLS_FLAGS:
                # Another exporter's flag: say ours, not the closest spelling click finds.
                message = f"No such option '{error.option_name}': {OTHER_TOOLS_FLAGS[error.option_name]}"
            fail(f"{message}{hint}")
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            # The run was staged in a hidden folder, removed on the way out: nothing half-written remains.
            where = f" while writing {error.filename}" if error.filename else ""
            fail(
                f"no space left on the disk{where}; free some space or choose an --out on another disk, "
                "then run the command again"
            )
        except (click.exceptions.Abort, KeyboardInterrupt) as error:
            stop = error.__cause__ if isinstance(error, click.exceptions.Abort) else error  # click wraps it in Abort
            if isinstance(stop, Interrupted):
                fail(f"interrupted by {stop.name}.", code=stop.exit_code)
            fail("interrupted.", code=130)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)


# Flags of other export tools (yolo export, optimum-cli, trtexec) that users try, and what edgeresnet calls them.
OTHER_TOOLS_FLAGS = {
    "--format": "the file type is the target: --target tflite-int8 (`edgeresnet targets` lists them)",
    "--int8": "int8 is a target: --target tflite-int8, openvino-int8 or tensorrt-int8",
    "--half": "fp16 is a target: --target tflite-fp16, openvino-fp16, coreml-fp16 or tensorrt-fp16",
    "--imgsz": "the input size is --input-size",
    "--output": "a run directory is --out; bench writes its JSON to a file with --json-out",
}


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgeresnet")
def main():
    """Turn a trained PyTorch ResNet into measured, deployable edge artifacts."""


for command in (
    compress,
    export,
    prune_command,
    sensitivity_command,
    inspect,
    evaluate_command,
    bench_command,
    report_command,
    models_command,
    targets_command,
    recipes_group,
):
    main.add_command(command)
