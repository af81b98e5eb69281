from mathagent.cli import main

main()
