from mathagent.cli import main

# vLLM starts worker processes with `spawn`, which re-imports this module:
# only the real entry point may run the CLI.
if __name__ == "__main__":
    main()
